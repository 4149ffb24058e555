# bash completion for nicpersist                           -*- shell-script -*-
# Static: the commands and flags of `nicpersist --help`; keep it in step.

_nicpersist() {
	local cur prev words cword
	_init_completion || return

	local cmds="render check apply uninstall try import verify version help"
	if [[ $cword -eq 1 ]]; then
		COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
		return
	fi

	case $prev in
	--profile | --out)
		_filedir toml
		return
		;;
	--rc-local)
		_filedir
		return
		;;
	--root | --dir | --state)
		_filedir -d
		return
		;;
	--target)
		COMPREPLY=($(compgen -W "auto rhel nm systemd" -- "$cur"))
		return
		;;
	--rhel-stack)
		COMPREPLY=($(compgen -W "auto network-scripts networkmanager" -- "$cur"))
		return
		;;
	--wait | --timeout)
		return
		;;
	esac

	local flags=""
	case ${words[1]} in
	render) flags="--profile --root --target --rhel-stack --dry-run --diff --json --help" ;;
	check) flags="--profile --root --help" ;;
	uninstall) flags="--root --dry-run --json --help" ;;
	try) flags="--profile --root --target --rhel-stack --timeout --confirm --help" ;;
	import) flags="--rc-local --live --out --force --help" ;;
	verify) flags="--profile --root --json --help" ;;
	apply)
		if [[ $cword -eq 2 ]]; then
			COMPREPLY=($(compgen -W "start stop" -- "$cur"))
			return
		fi
		flags="--dir --state --wait --help"
		;;
	esac
	COMPREPLY=($(compgen -W "$flags" -- "$cur"))
} &&
	complete -F _nicpersist nicpersist

# ex: filetype=sh
