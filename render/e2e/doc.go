// Package e2e holds nicpersist's end-to-end tests: the seed topology built in
// network namespaces, the rendered artifacts applied as a boot applies them,
// and a systemd-nspawn boot that starts the enabled unit. It has no non-test
// code; see TESTING.md, "End-to-end tests", for the topology and how to run it.
package e2e
