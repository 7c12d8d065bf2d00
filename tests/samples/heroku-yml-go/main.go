package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "go built from heroku.yml build.languages")
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
