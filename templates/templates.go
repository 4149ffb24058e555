// Package templates holds the static files nicpersist installs verbatim. They
// take no input from the profile: everything profile-specific is in data
// files beside them, rendered from validated values.
package templates

import _ "embed"

// ApplySh is etc/nicpersist/apply.sh, run by nicpersist.service.
//
//go:embed apply.sh
var ApplySh string
