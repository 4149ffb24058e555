package cli

import (
	"testing"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// TestMain lets TestFaultKill run this binary as nicpersist: it needs the
// command as a process of its own to kill.
func TestMain(m *testing.M) { testenv.Main(m, Main) }
