package main

import (
	"fmt"

	"github.com/urfave/cli"
)

// bashCompletion and zshCompletion are urfave/cli's completion scripts for
// satstream: they ask the binary itself (--generate-bash-completion) for
// the commands and flags of its definition, so they never go stale.
const bashCompletion = `# bash completion for satstream; source it, or install it as
# /etc/bash_completion.d/satstream: satstream completion bash > ...
_satstream_bash_autocomplete() {
  if [[ "${COMP_WORDS[0]}" != "source" ]]; then
    local cur opts
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if [[ "$cur" == "-"* ]]; then
      opts=$( ${COMP_WORDS[@]:0:$COMP_CWORD} ${cur} --generate-bash-completion )
    else
      opts=$( ${COMP_WORDS[@]:0:$COMP_CWORD} --generate-bash-completion )
    fi
    COMPREPLY=( $(compgen -W "${opts}" -- ${cur}) )
    return 0
  fi
}
complete -o bashdefault -o default -o nospace -F _satstream_bash_autocomplete satstream
`

const zshCompletion = `#compdef satstream
# zsh completion for satstream: satstream completion zsh > "${fpath[1]}/_satstream"
_satstream() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(_CLI_ZSH_AUTOCOMPLETE_HACK=1 ${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _satstream satstream
`

// completionCommand prints a shell completion script.
var completionCommand = cli.Command{
	Name:      "completion",
	Usage:     "print a shell completion script (bash or zsh)",
	ArgsUsage: "bash|zsh",
	Action: func(c *cli.Context) error {
		switch c.Args().First() {
		case "bash":
			_, err := fmt.Fprint(c.App.Writer, bashCompletion)
			return err
		case "zsh":
			_, err := fmt.Fprint(c.App.Writer, zshCompletion)
			return err
		}
		return fmt.Errorf("completion takes bash or zsh")
	},
}

// manCommand prints the man page, generated from the command definition.
var manCommand = cli.Command{
	Name:        "man",
	Usage:       "print the satstream(1) man page, made from this command's definition",
	Description: "satstream man > /usr/local/share/man/man1/satstream.1",
	Action: func(c *cli.Context) error {
		page, err := c.App.ToMan()
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(c.App.Writer, page)
		return err
	},
}
