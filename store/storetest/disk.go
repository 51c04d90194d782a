package storetest

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of the given size ("4m") on a temp dir and returns the dir, unmounted
// when the test ends: a disk small enough for a test to fill. Without the privilege to mount it
// skips the test, except in CI (CI=true), where it fails it.
func Tmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("mount tmpfs: %v %s", err, out)
		}
		tb.Skipf("cannot mount a tmpfs here (%v %s); CI runs this", err, out)
	}
	tb.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// FillDisk writes the file path until its file system has no space left, and returns the
// function that removes the file again.
func FillDisk(tb testing.TB, path string) (free func()) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	for chunk := make([]byte, 64<<10); ; {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				tb.Fatal(err)
			}
			break
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			tb.Error(err)
		}
	}
}
