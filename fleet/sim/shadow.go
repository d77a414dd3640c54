package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image"
	"image/color"
	"image/jpeg"
	"sync"
	"time"

	"edgefleet/fleet/api"
)

// Shadow phases. A model update with a Shadow spec runs, after verifying,
// a shadow phase scaled down to at most Options.MaxShadow: the device
// reports JobShadow with a periodic report halfway, then the final report
// (with a small JPEG sample of the frame where the models disagree most).
// Its agreement is ShadowAgreementOf(device), by default
// ShadowAgreement (0.95 when 0) less ShadowSpread times a number in [0, 1)
// drawn from a hash of the id, so the same devices score the same in every
// run. Below the command's MinAgreement the job fails with the final
// report and the model stays; otherwise it goes on to installing.

// ShadowAgreement returns the agreement a device reports with these options.
func (o *Options) shadowAgreement(id string) float64 {
	if o.ShadowAgreementOf != nil {
		return o.ShadowAgreementOf(id)
	}
	a := o.ShadowAgreement
	if a == 0 {
		a = 0.95
	}
	if o.ShadowSpread > 0 {
		h := fnv.New32a()
		h.Write([]byte("shadow/" + id))
		a -= o.ShadowSpread * float64(h.Sum32()%10000) / 10000
	}
	return min(max(a, 0), 1)
}

// shadowReport is what a device with agreement a reports after frames.
func (o *Options) shadowReport(a float64, spec *api.ShadowSpec, elapsed time.Duration, frames int, final bool) *api.ShadowReport {
	serving := 3 * frames
	matched := int(a * float64(serving))
	stats := api.ShadowStats{Serving: serving, Candidate: serving, Matched: matched, Precision: a, Recall: a, F1: a, CountRatio: 1,
		ScoreShift: -0.01}
	label := func(i int) string { return o.Labels[i%len(o.Labels)] }
	conf := []api.ShadowConfusion{{Serving: label(0), Candidate: label(1), Count: (serving - matched + 1) / 2}}
	r := &api.ShadowReport{Final: final, ElapsedS: elapsed.Seconds(), Frames: frames, Agreement: a, MinAgreement: spec.MinAgreement,
		ShadowStats: stats, ServingMs: 20, CandidateMs: 22, LatencyRatio: 1.1, Confusion: conf,
		Cameras: []api.ShadowCamera{{Camera: "cam0", Frames: frames, ShadowStats: stats, Confusion: conf}}}
	if final {
		r.Samples = []api.ShadowSample{{Camera: "cam0", TimeUs: time.Now().UnixMicro(), Disagreement: 1 - a, JPEG: sampleJPEG()}}
	}
	return r
}

var sampleJPEG = sync.OnceValue(func() []byte {
	// Two halves, as an agent's sample: the serving model's boxes on the
	// left, the candidate's on the right.
	img := image.NewRGBA(image.Rect(0, 0, 64, 32))
	for y := range 32 {
		for x := range 64 {
			c := color.RGBA{40, 120, 200, 255}
			if x >= 32 {
				c = color.RGBA{200, 120, 40, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 70})
	return b.Bytes()
})

// runShadow runs a command's shadow phase; it returns false when the job
// ended (failed, or the device stopped).
func (d *device) runShadow(c api.Command, j *jobRun, wait func(time.Duration) bool) bool {
	spec := c.Shadow
	dur := min(time.Duration(spec.DurationS*float64(time.Second)), d.o.MaxShadow)
	a := d.o.shadowAgreement(d.id)
	frames := max(int(spec.DurationS), 2) // about a frame a second, whatever the scaled-down time
	d.setState(j, api.JobShadow)
	d.reportShadow(c.JobID, api.JobShadow, "", d.o.shadowReport(a, spec, dur/2, frames/2, false))
	if !wait(dur / 2) {
		return false
	}
	if !wait(dur - dur/2) {
		return false
	}
	final := d.o.shadowReport(a, spec, dur, frames, true)
	if a < spec.MinAgreement {
		d.ota.shadowFailed.Add(1)
		d.ota.failed.Add(1)
		d.setState(j, api.JobFailed)
		d.reportShadow(c.JobID, api.JobFailed, fmt.Sprintf("shadow: agreement %.3f below min %.3f; the serving model stays", a, spec.MinAgreement), final)
		return false
	}
	d.ota.shadowPassed.Add(1)
	d.reportShadow(c.JobID, api.JobShadow, "", final)
	return true
}

func (d *device) reportShadow(job, state, reason string, rep *api.ShadowReport) {
	p, _ := json.Marshal(api.JobStatus{DeviceID: d.id, JobID: job, State: state, Reason: reason, Time: time.Now().UnixMilli(), Shadow: rep})
	d.cl.publish(api.JobTopic(d.id, job), 1, false, p)
}
