# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ccmanagerctl_global_optspecs
    string join \n socket= json timeout= connect-timeout= h/help V/version
end

function __fish_ccmanagerctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ccmanagerctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ccmanagerctl_using_subcommand
    set -l cmd (__fish_ccmanagerctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -s V -l version -d 'Print version'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "status" -d 'Daemon version, uptime, tmux server and session counts'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "ping" -d 'Check that the daemon answers'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "reload" -d 'Re-read the config file (same as `systemctl reload ccmanagerd`)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "health" -d 'Health checks'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "metrics" -d 'Prometheus metrics text'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "ls" -d 'List sessions'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "new" -d 'Create a session running CMD (an argv, never a shell string)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "show" -d 'Show one session (every field the daemon returns)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "restart" -d 'Restart a session\'s program in the same session (same id, name, size and log)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "kill" -d 'Kill sessions (the whole process tree of each)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "send" -d 'Type text into a session'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "capture" -d 'Print a session\'s screen (and scrollback with --lines)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "resize" -d 'Resize a session\'s pane, e.g. `resize ID 120x40`'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "attach" -d 'Attach this terminal to a session through the daemon (detach with Ctrl-], or --detach-key)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "logs" -d 'Print a session\'s output log (-f: and follow it)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "cleanup" -d 'Remove old, idle and dead sessions now'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "call" -d 'Send a raw JSON-RPC request and print the result'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "manpage" -d 'Print the man page (roff)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand status" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand status" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand status" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand status" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ping" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ping" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ping" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ping" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ping" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand reload" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand reload" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand reload" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand reload" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand health" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand health" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand health" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand health" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand health" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand metrics" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand metrics" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand metrics" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand metrics" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ls" -l state -d 'Only sessions in this state (running, exited, lost)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ls" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ls" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ls" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ls" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand ls" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l name -d 'A label' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l cwd -d 'Working directory (absolute; default: the user\'s home). Entered as the session\'s user' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l user -d 'Run as this user (name or uid; root and admins only)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l env -d 'Environment variable, K=V (repeatable)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l size -d 'Size as COLSxROWS, e.g. 120x40' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l limit -d 'A limit, NAME=VALUE (e.g. nofile=1024, memory_max=2G; repeatable)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l restore -d 'Re-create it after a reboot (on_boot) or also after its tmux server died (always). Default: the daemon\'s sessions.restore' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l resume-command -d 'What a restore runs instead of CMD, as a JSON array (an argv, never a shell string), e.g. \'["claude","--continue"]\'' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l restart -d 'Run the program again when it exits. Default: the daemon\'s sessions.restart' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l keep -d 'Exempt from cleanup'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand new" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand show" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand show" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand show" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand show" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand show" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand restart" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand restart" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand restart" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand restart" -l resume -d 'Start the session\'s resume command instead of its command'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand restart" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand restart" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand kill" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand kill" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand kill" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand kill" -l all -d 'Kill every session you can see'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand kill" -s y -l yes -d 'Do not ask for confirmation with --all'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand kill" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand kill" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand send" -l key -d 'Named keys sent after the text (e.g. C-c, Up; repeatable)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand send" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand send" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand send" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand send" -l enter -d 'Press Enter at the end'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand send" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand send" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand capture" -l lines -d 'Scrollback lines above the visible screen' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand capture" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand capture" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand capture" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand capture" -l escapes -d 'Keep colour escape sequences'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand capture" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand capture" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand resize" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand resize" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand resize" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand resize" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand resize" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand attach" -l detach-key -d 'The key that detaches (a control key: ctrl-], ctrl-a, ^A, C-q). It is never sent to the session: pick another one if its program needs that key' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand attach" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand attach" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand attach" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand attach" -l tmux -d 'Exec a tmux client on the session\'s own tmux server instead (the session\'s user or root only; detach with its prefix, C-b d). With --json, print that command'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand attach" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand attach" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -l from -d 'Start at this byte offset of the session\'s output' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -s n -l tail -d 'Start at the last LINES lines' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -s f -l follow -d 'Keep printing new output until the session ends (or Ctrl-C)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -l raw -d 'Write the bytes exactly, escape sequences included (the default strips them: a session\'s output must not drive your terminal)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand logs" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand cleanup" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand cleanup" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand cleanup" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand cleanup" -l dry-run -d 'Only show what would be removed'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand cleanup" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand cleanup" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand call" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand call" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand call" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand call" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand call" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand completions" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand completions" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand completions" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand completions" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand manpage" -l socket -d 'The daemon\'s control socket [default: /run/ccmanagerd/ccmanagerd.sock when a connect to it works, else $XDG_RUNTIME_DIR/ccmanagerd/ccmanagerd.sock]' -r -F
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand manpage" -l timeout -d 'Give up when the daemon has not answered a request within this long (e.g. 30s, 2m)' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand manpage" -l connect-timeout -d 'Give up when the connection is not accepted within this long' -r
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand manpage" -l json -d 'Print the raw JSON result instead of a human summary'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand manpage" -s h -l help -d 'Print help'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "status" -d 'Daemon version, uptime, tmux server and session counts'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "ping" -d 'Check that the daemon answers'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "reload" -d 'Re-read the config file (same as `systemctl reload ccmanagerd`)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "health" -d 'Health checks'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "metrics" -d 'Prometheus metrics text'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "ls" -d 'List sessions'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "new" -d 'Create a session running CMD (an argv, never a shell string)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "show" -d 'Show one session (every field the daemon returns)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "restart" -d 'Restart a session\'s program in the same session (same id, name, size and log)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "kill" -d 'Kill sessions (the whole process tree of each)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "send" -d 'Type text into a session'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "capture" -d 'Print a session\'s screen (and scrollback with --lines)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "resize" -d 'Resize a session\'s pane, e.g. `resize ID 120x40`'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "attach" -d 'Attach this terminal to a session through the daemon (detach with Ctrl-], or --detach-key)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "logs" -d 'Print a session\'s output log (-f: and follow it)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "cleanup" -d 'Remove old, idle and dead sessions now'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "call" -d 'Send a raw JSON-RPC request and print the result'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "manpage" -d 'Print the man page (roff)'
complete -c ccmanagerctl -n "__fish_ccmanagerctl_using_subcommand help; and not __fish_seen_subcommand_from status ping reload health metrics ls new show restart kill send capture resize attach logs cleanup call completions manpage help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
