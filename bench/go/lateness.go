// lateness.go - Go peer of bench/bench_lateness.cpp: one goroutine sleeps
// 100 us again and again while another spins; run with GOMAXPROCS=1 (the
// spinner is preempted only by sysmon, after ~10 ms).  Lateness = wake-up
// time minus the requested deadline.  Prints Google-Benchmark-shaped JSON:
// one entry per repetition, real_time = mean lateness (us), counters
// lat_median_ns, lat_p99_ns, lat_max_ns over that repetition's samples.
//
//	GOMAXPROCS=1 go run lateness.go -samples 100 -reps 3
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync/atomic"
	"time"
)

const sleep = 100 * time.Microsecond

func pct(v []float64, p float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	k := int(p*float64(len(s)-1) + 0.5)
	if k >= len(s) {
		k = len(s) - 1
	}
	return s[k]
}

func run(samples int) []float64 {
	var stop int32
	done := make(chan struct{})
	go func() {
		for atomic.LoadInt32(&stop) == 0 {
		}
		close(done)
	}()
	runtime.Gosched() // the spinner starts and holds the P
	lat := make([]float64, 0, samples)
	for i := 0; i < samples; i++ {
		t0 := time.Now()
		time.Sleep(sleep)
		lat = append(lat, float64((time.Since(t0) - sleep).Nanoseconds()))
	}
	atomic.StoreInt32(&stop, 1)
	<-done
	return lat
}

func main() {
	samples := flag.Int("samples", 100, "sleeps per repetition")
	reps := flag.Int("reps", 3, "repetitions")
	name := flag.String("name", "lateness/go_p1", "benchmark name")
	flag.Parse()
	type entry map[string]interface{}
	var out []entry
	for r := 0; r < *reps; r++ {
		lat := run(*samples)
		var sum float64
		for _, l := range lat {
			sum += l
		}
		out = append(out, entry{"name": *name, "run_name": *name, "run_type": "iteration",
			"repetitions": *reps, "repetition_index": r, "iterations": *samples,
			"real_time": sum / float64(len(lat)) / 1e3, "time_unit": "us",
			"lat_median_ns": pct(lat, 0.5), "lat_p99_ns": pct(lat, 0.99), "lat_max_ns": pct(lat, 1)})
	}
	doc := map[string]interface{}{
		"context": map[string]interface{}{
			"executable": "bench/go/lateness.go", "go_version": runtime.Version(),
			"gomaxprocs": runtime.GOMAXPROCS(0), "num_cpus": runtime.NumCPU(),
		},
		"benchmarks": out,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
