// Package greet is a local module, vendored with `go mod vendor`.
package greet

func Hello() string { return "hello from a vendored module" }
