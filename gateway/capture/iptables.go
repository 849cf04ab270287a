package capture

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// ErrIPTablesNotFound is returned by Install and Uninstall when the
// iptables command cannot be found. On Debian and Ubuntu it comes with the
// package iptables.
var ErrIPTablesNotFound = errors.New("iptables command not found (install the Debian package iptables)")

// maxDuplicateJumps bounds the loop that deletes a jump added more than
// once (by hand, or by another tool using the same rule), so that a rule
// iptables reports but will not delete cannot spin Uninstall forever.
const maxDuplicateJumps = 64

// Install makes the nat table of the calling thread's network namespace
// capture traffic as cfg says, replacing whatever an earlier Install left
// there; see the package documentation for the rules. It needs
// CAP_NET_ADMIN in that namespace.
func Install(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	ipt, err := lookIPTables(cfg.Command)
	if err != nil {
		return err
	}
	existing, err := ipt.chains(ctx)
	if err != nil {
		return err
	}
	p := newPlan(cfg)

	// Empty our chains first, creating the missing ones, so that the rules
	// below can jump to any of them.
	for _, c := range p.chains {
		op := "-N"
		if existing[c.name] {
			op = "-F"
		}
		if _, err := ipt.run(ctx, "-t", "nat", op, c.name); err != nil {
			return err
		}
	}
	for _, c := range p.chains {
		for _, r := range c.rules {
			if _, err := ipt.run(ctx, appendRule(c.name, r)...); err != nil {
				return err
			}
		}
	}
	for _, j := range p.jumps {
		ok, err := ipt.hasRule(ctx, j)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := ipt.run(ctx, appendRule(j.from, j.spec())...); err != nil {
				return err
			}
		}
	}

	// Remove what an earlier configuration had and this one has not (the
	// inbound chains when inbound capture was turned off).
	var stale []string
	for _, name := range ownedChains {
		if existing[name] && !p.hasChain(name) {
			stale = append(stale, name)
		}
	}
	return ipt.remove(ctx, stale)
}

// Uninstall removes from the nat table of the calling thread's network
// namespace every chain and jump rule Install may have added, and nothing
// else. Removing what is not there is not an error. Only cfg.Command is
// used.
func Uninstall(ctx context.Context, cfg Config) error {
	command := cfg.Command
	if command == "" {
		command = defaultCommand
	}
	ipt, err := lookIPTables(command)
	if err != nil {
		return err
	}
	existing, err := ipt.chains(ctx)
	if err != nil {
		return err
	}
	var owned []string
	for _, name := range ownedChains {
		if existing[name] {
			owned = append(owned, name)
		}
	}
	return ipt.remove(ctx, owned)
}

// iptables runs one iptables binary.
type iptables struct {
	path string
}

// sbinDirs are searched after PATH for a bare command name: iptables lives
// in /usr/sbin, which the PATH of init containers and of non-root shells
// often lacks.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// lookIPTables finds the iptables binary named by command.
func lookIPTables(command string) (iptables, error) {
	path, err := exec.LookPath(command)
	if isNotFound(err) && !strings.Contains(command, "/") {
		for _, dir := range sbinDirs {
			if p, serr := exec.LookPath(filepath.Join(dir, command)); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if isNotFound(err) {
		return iptables{}, fmt.Errorf("look for %q: %w", command, ErrIPTablesNotFound)
	}
	if err != nil {
		return iptables{}, fmt.Errorf("look for %q: %w", command, err)
	}
	return iptables{path: path}, nil
}

// isNotFound reports whether exec.LookPath failed for want of the file: a
// bare name not in PATH, or a path that does not exist.
func isNotFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// run runs iptables with args, waiting for the xtables lock (-w) rather
// than failing when another process holds it, and returns its output.
func (ipt iptables) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, ipt.path, append([]string{"-w"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, fmt.Errorf("run %s %s: %w", ipt.path, strings.Join(args, " "), err)
		}
		return nil, fmt.Errorf("run %s %s: %w: %s", ipt.path, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// chains returns the user-defined chains of the nat table.
func (ipt iptables) chains(ctx context.Context) (map[string]bool, error) {
	out, err := ipt.run(ctx, "-t", "nat", "-S")
	if err != nil {
		return nil, err
	}
	return parseChains(out), nil
}

// parseChains picks the chain names out of `iptables -S` output, whose
// user-defined chains appear as "-N NAME" lines (built-in ones as "-P").
func parseChains(listing []byte) map[string]bool {
	chains := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(listing))
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "-N "); ok {
			chains[strings.TrimSpace(name)] = true
		}
	}
	return chains
}

// hasRule reports whether the jump is in its built-in chain. iptables -C
// exits with status 1 when the rule is missing and with another status for
// real failures (bad arguments, no permission).
func (ipt iptables) hasRule(ctx context.Context, j jump) (bool, error) {
	_, err := ipt.run(ctx, append([]string{"-t", "nat", "-C", j.from}, j.spec()...)...)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return false, nil
	}
	return err == nil, err
}

// remove deletes the named chains of ours, which must exist, and every
// jump to them from a built-in chain. (Jumps to chains that do not exist
// cannot exist either, and iptables -C fails differently for them.)
func (ipt iptables) remove(ctx context.Context, names []string) error {
	for _, j := range ownedJumps {
		if !slices.Contains(names, j.to) {
			continue
		}
		if err := ipt.deleteJump(ctx, j); err != nil {
			return err
		}
	}
	// Flush all before deleting any: our chains jump to one another, and
	// iptables refuses to delete a chain that is still referenced.
	for _, name := range names {
		if _, err := ipt.run(ctx, "-t", "nat", "-F", name); err != nil {
			return err
		}
	}
	for _, name := range names {
		if _, err := ipt.run(ctx, "-t", "nat", "-X", name); err != nil {
			return err
		}
	}
	return nil
}

// deleteJump deletes every copy of the jump rule.
func (ipt iptables) deleteJump(ctx context.Context, j jump) error {
	for range maxDuplicateJumps {
		ok, err := ipt.hasRule(ctx, j)
		if err != nil || !ok {
			return err
		}
		if _, err := ipt.run(ctx, append([]string{"-t", "nat", "-D", j.from}, j.spec()...)...); err != nil {
			return err
		}
	}
	return fmt.Errorf("delete %s jump to %s: still present after %d deletions", j.from, j.to, maxDuplicateJumps)
}
