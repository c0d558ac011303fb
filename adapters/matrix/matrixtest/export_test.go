package matrixtest

// ErrPortTaken, FreeLoopbackAddr and EphemeralLow let the tests check how
// Dendrite's port is picked.
var (
	ErrPortTaken     = errPortTaken
	FreeLoopbackAddr = freeLoopbackAddr
	EphemeralLow     = ephemeralLow
	MinPort          = minPort
)

// PickAddrs makes Start pick each of addrs in turn, then free ports again;
// the returned function restores the picking.
func PickAddrs(addrs ...string) (restore func()) {
	next := pickAddr
	pickAddr = func() (string, error) {
		if len(addrs) == 0 {
			return next()
		}
		a := addrs[0]
		addrs = addrs[1:]
		return a, nil
	}
	return func() { pickAddr = next }
}
