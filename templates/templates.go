// Package templates holds the text of the files nicpersist renders, as
// text/template files embedded in the binary, so that each format reads in
// one place. The values they are given are validated before: a template
// never sees the profile's text unchecked.
package templates

import (
	"embed"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

// Parse returns the templates, each named by its file name (ip.batch.tmpl
// and so on). It fails only on a template that does not parse, which the
// tests would have found.
func Parse() (*template.Template, error) {
	return template.ParseFS(files, "*.tmpl")
}
