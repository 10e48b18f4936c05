//go:build !linux

package integration

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup is a no-op outside Linux; provider.mjs starts no children of its own.
func setProcessGroup(*exec.Cmd) {}

// signalProcessGroup terminates the child: politely first, by force when kill is set.
func signalProcessGroup(cmd *exec.Cmd, kill bool) {
	if kill {
		_ = cmd.Process.Kill()
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
}

// pauseProcessGroup cannot pause a process outside Linux.
func pauseProcessGroup(*exec.Cmd, bool) bool { return false }

// processAlive reports whether a process with this pid still exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}
