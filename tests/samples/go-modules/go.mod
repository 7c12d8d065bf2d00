// +heroku goVersion go1.25
module example.com/hello-mod

go 1.25.0

require example.com/greet v0.0.0

replace example.com/greet => ./greet
