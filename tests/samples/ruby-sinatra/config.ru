require "./app"
run App
