package readmecheck

import (
	"regexp"
	"strings"
)

// Command is one command line of a Markdown file.
type Command struct {
	// Text is the command as written, continuation lines joined (the
	// backslash and the next line's indentation become one space; so do
	// the indented "[--flag]" lines that continue a usage synopsis) and a
	// trailing shell comment removed.
	Text string
	// Line is the 1-based line of the file where the command starts.
	Line int
	// Inline is true for a command in a `code span` of prose.
	Inline bool
}

var (
	// tools are the first words that make a line a command.
	tools = map[string]bool{
		"make": true, "go": true, "edge-agent": true, "fleetctl": true, "fleetd": true,
		"edge-launcher": true, "export": true, "sudo": true, "source": true,
		"qemu-aarch64-static": true, ".ci/run": true,
	}
	pathTool   = regexp.MustCompile(`^(bin|scripts)/\S`)
	assignment = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)
	comment    = regexp.MustCompile(`\s+#(\s.*)?$`)
	codeSpan   = regexp.MustCompile("`([^`]+)`")
	fence      = regexp.MustCompile("^\\s*(```|~~~)\\s*([A-Za-z]*)")
)

// shellFence reports whether a fenced block with this info string holds
// shell (an empty one may: the directory tree does, harmlessly).
func shellFence(lang string) bool {
	switch lang {
	case "", "sh", "bash", "shell", "console":
		return true
	}
	return false
}

// IsCommand reports whether s starts with one of the project's commands or
// tools, or with an environment assignment (GOARCH=arm64 go test ...).
func IsCommand(s string) bool {
	if assignment.MatchString(s) {
		return true
	}
	first, _, _ := strings.Cut(s, " ")
	return tools[first] || pathTool.MatchString(first)
}

// Extract returns the commands of Markdown text md in the order they appear.
func Extract(md string) []Command {
	lines := strings.Split(md, "\n")
	var out []Command
	var block []string // lines of the code block being read
	blockStart := 0
	flush := func() {
		out = append(out, blockCommands(block, blockStart)...)
		block = nil
	}
	inFence, shell, prevBlank := false, false, true
	for i, l := range lines {
		if m := fence.FindStringSubmatch(l); m != nil {
			if inFence {
				if shell {
					flush()
				}
				inFence, prevBlank = false, false
				continue
			}
			inFence, shell, blockStart, block = true, shellFence(m[2]), i+2, nil
			continue
		}
		switch {
		case inFence:
			if shell {
				block = append(block, l)
			}
			continue
		case strings.TrimSpace(l) == "":
			if block != nil {
				block = append(block, "")
			}
			prevBlank = true
			continue
		case strings.HasPrefix(l, "    ") && (prevBlank || block != nil):
			if block == nil {
				blockStart = i + 1
			}
			block = append(block, l[4:])
			continue
		}
		if block != nil {
			flush()
		}
		prevBlank = false
		for _, m := range codeSpan.FindAllStringSubmatch(l, -1) {
			if s := strings.TrimSpace(m[1]); strings.Contains(s, " ") && IsCommand(s) {
				out = append(out, Command{Text: s, Line: i + 1, Inline: true})
			}
		}
	}
	if block != nil {
		flush()
	}
	return out
}

// blockCommands returns the commands of a code block whose first line is
// line first of the file.
func blockCommands(block []string, first int) []Command {
	var out []Command
	for i := 0; i < len(block); i++ {
		start := i
		text := strings.TrimSpace(block[i])
		for strings.HasSuffix(text, `\`) && i+1 < len(block) {
			i++
			text = strings.TrimSpace(strings.TrimSuffix(text, `\`)) + " " + strings.TrimSpace(block[i])
		}
		// A usage synopsis goes on over indented lines of [optional] flags.
		for i+1 < len(block) && strings.HasPrefix(block[i+1], " ") &&
			strings.HasPrefix(strings.TrimSpace(block[i+1]), "[") {
			i++
			text += " " + strings.TrimSpace(block[i])
		}
		text = strings.TrimSpace(comment.ReplaceAllString(text, ""))
		if IsCommand(text) {
			out = append(out, Command{Text: text, Line: first + start})
		}
	}
	return out
}
