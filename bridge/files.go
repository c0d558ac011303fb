package bridge

// FileLinker turns a file a person sent into a URL the bot can fetch
// (media.Links, served by the bridge's HTTP listener).
type FileLinker interface {
	// URL returns the link for f, a file sent on platform p. It does no
	// I/O and cannot fail.
	URL(p Platform, f File) string
}
