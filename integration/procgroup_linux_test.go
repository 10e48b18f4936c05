package integration

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the child in its own process group, so that Stop can signal everything node started, and
// asks the kernel to kill it if the test binary dies first.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalProcessGroup sends SIGTERM (or SIGKILL when kill is set) to the child's whole process group.
func signalProcessGroup(cmd *exec.Cmd, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
}

// pauseProcessGroup stops (SIGSTOP) or continues (SIGCONT) the child's whole process group; it reports whether it
// can.
func pauseProcessGroup(cmd *exec.Cmd, pause bool) bool {
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	return syscall.Kill(-cmd.Process.Pid, sig) == nil
}

// processAlive reports whether a process with this pid still exists.
func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}
