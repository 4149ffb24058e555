// Package templates holds the text of the files nicpersist renders, as
// text/template files embedded in the binary, so that each format reads in
// one place.
package templates
