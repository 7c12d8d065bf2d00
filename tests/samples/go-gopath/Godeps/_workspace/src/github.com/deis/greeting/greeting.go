// Package greeting is a dependency vendored the Godeps way (Godeps/_workspace).
package greeting

func Hello(who string) string { return "Powered by " + who }
