// A Go modules app with vendor/ and no Procfile: the default web process is bin/hello-mod.
package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"

	"example.com/greet"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (modules, %s)\n", greet.Hello(), runtime.Version())
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
