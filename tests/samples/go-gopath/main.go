// The Deis "example-go" shape: a GOPATH-era app with Godeps, no go.mod.
package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"

	"github.com/deis/greeting"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (gopath, %s)\n", greeting.Hello("Deis"), runtime.Version())
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	http.ListenAndServe(":"+port, nil)
}
