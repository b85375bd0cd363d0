package dtls

import "time"

// rttStats is a round-trip time estimator after RFC 6298 §2, shaped like
// quic-go's utils.RTTStats so that the DTLS 1.3 transport, whose ACKs give
// a sample per acknowledged record, can share it with the DTLS 1.2
// transport, where the sample is the time from sending a flight to the
// first fragment of the peer's answer. It keeps no clock and takes no
// samples on its own: the transport decides what counts as a sample
// (Karn's rule: never the answer to a retransmitted flight) and feeds it
// to update. The zero value has no estimate.
type rttStats struct {
	srtt   time.Duration // smoothed RTT; 0: no sample yet
	rttvar time.Duration // RTT variation
	latest time.Duration // the last sample
}

const (
	// rttVarFactor is RFC 6298 §2's K: RTO = SRTT + K·RTTVAR.
	rttVarFactor = 4
	// rttAlphaShift and rttBetaShift are RFC 6298 §2.3's gains alpha = 1/8
	// and beta = 1/4, as shifts.
	rttAlphaShift = 3
	rttBetaShift  = 2
)

// hasMeasurement reports whether a sample was taken.
func (r *rttStats) hasMeasurement() bool { return r.srtt != 0 }

// smoothedRTT returns SRTT, 0 before the first sample.
func (r *rttStats) smoothedRTT() time.Duration { return r.srtt }

// latestRTT returns the last sample, 0 before the first.
func (r *rttStats) latestRTT() time.Duration { return r.latest }

// update folds one round-trip sample into the estimate (RFC 6298 §2.2 for
// the first sample, §2.3 after it). Negative samples count as 0.
func (r *rttStats) update(sample time.Duration) {
	sample = max(sample, 0)
	r.latest = sample
	if r.srtt == 0 {
		r.srtt, r.rttvar = max(sample, 1), sample/2
		return
	}
	d := r.srtt - sample
	if d < 0 {
		d = -d
	}
	r.rttvar += (d - r.rttvar) >> rttBetaShift
	r.srtt += (sample - r.srtt) >> rttAlphaShift
}

// rto returns RFC 6298 §2's RTO = SRTT + K·RTTVAR, no lower than floor
// and no higher than maxRetransmitTimeout, or ok=false before the first
// sample.
func (r *rttStats) rto(floor time.Duration) (d time.Duration, ok bool) {
	if r.srtt == 0 {
		return 0, false
	}
	return min(max(r.srtt+rttVarFactor*r.rttvar, floor), maxRetransmitTimeout), true
}
