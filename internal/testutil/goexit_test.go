package testutil

import "runtime"

func runtimeGoexit() { runtime.Goexit() }
