module github.com/nicpersist/nicpersist

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/spf13/pflag v1.1.0
)
