// Package media moves files between the platforms and the bots: Fetcher
// downloads the files a bot links to, guarded against the operator's own
// network, and Links makes and serves the links through which a bot fetches
// the files people send.
package media
