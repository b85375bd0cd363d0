//go:build race

package dtls

// underRace reports whether the race detector is on: the long loss table
// runs fewer seeds under it.
const underRace = true
