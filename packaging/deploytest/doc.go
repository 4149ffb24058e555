// Package deploytest checks the deployment recipes under packaging/: the
// Ansible role (packaging/ansible) run by Debian's ansible-playbook against
// a scratch root, and the cloud-init user-data (packaging/cloud-init)
// validated by Debian's cloud-init. The tests only build nicpersist and run
// those tools locally: nothing is installed, no unit is reloaded, and no
// network is used.
package deploytest
