// Package testenv is what the project's tests share about the machine they
// run on: whether a missing test dependency is a failure (CI) or a skip, and
// how to say so where the person running `go test ./...` sees it.
package testenv

import (
	"fmt"
	"os"
)

// CI reports whether CI=true is set. A test dependency that can be neither
// found nor installed then fails the run instead of skipping tests, so CI can
// never pass without having tested.
func CI() bool { return os.Getenv("CI") == "true" }

// Notice prints one line that `go test ./...` shows even when the package
// passes and -v is not given.
//
// In package list mode go test keeps the whole output of a passing test
// binary to itself, its standard error included, so a line written there is
// hidden exactly when it matters: when tests were skipped and the run is
// green. On Linux the line is therefore written to the standard error of the
// parent process, the go command, when that is a terminal or a pipe. Anywhere
// else (another system, standard error redirected to a regular file, where
// a second writer would overwrite or be overwritten) it goes to the binary's
// own standard error, shown with -v or when the package fails.
func Notice(format string, args ...any) {
	line := fmt.Sprintf(format, args...) + "\n"
	if writeToParentStderr(line) {
		return
	}
	fmt.Fprint(os.Stderr, line)
}

// writeToParentStderr writes line to the parent's standard error if it can be
// opened through /proc and is not a regular file.
func writeToParentStderr(line string) bool {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/2", os.Getppid()), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.Mode().IsRegular() {
		return false
	}
	_, err = f.WriteString(line)
	return err == nil
}
