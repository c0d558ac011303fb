package matrixtest

import "syscall"

// sysProcAttr makes the kernel kill Dendrite when the test binary dies (a
// panic or a -timeout), so no homeserver outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
