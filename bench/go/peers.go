// peers.go - Go peers (informational columns) for the micro-benchmarks:
// yield (runtime.Gosched between two goroutines; ops = 2 yields per iteration), create+join (go f();
// <-done), uncontended sync.Mutex, and a ping-pong round trip over
// sync.Mutex + sync.Cond (the same protocol as bench_sync's pingpong) and over
// unbuffered channels.  Uses testing.Benchmark; prints Google-Benchmark-shaped
// JSON (one entry per repetition, time in ns per iteration, counter "ops").
//
//	GOMAXPROCS=1 go run peers.go -reps 3 -suffix go_p1
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func yield(b *testing.B) {
	var stop int32
	done := make(chan struct{})
	go func() {
		for atomic.LoadInt32(&stop) == 0 {
			runtime.Gosched()
		}
		close(done)
	}()
	runtime.Gosched()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.Gosched()
	}
	b.StopTimer()
	atomic.StoreInt32(&stop, 1)
	<-done
}

func create(b *testing.B) {
	done := make(chan struct{})
	for i := 0; i < b.N; i++ {
		go func() { done <- struct{}{} }()
		<-done
	}
}

func mutex(b *testing.B) {
	var m sync.Mutex
	for i := 0; i < b.N; i++ {
		m.Lock()
		m.Unlock()
	}
}

func pingpongCond(b *testing.B) {
	var m sync.Mutex
	c := sync.NewCond(&m)
	turn, stop := 0, false
	done := make(chan struct{})
	go func() {
		m.Lock()
		for {
			for turn != 1 {
				c.Wait()
			}
			if stop {
				m.Unlock()
				close(done)
				return
			}
			turn = 0
			c.Signal()
		}
	}()
	m.Lock()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		turn = 1
		c.Signal()
		for turn != 0 {
			c.Wait()
		}
	}
	b.StopTimer()
	stop, turn = true, 1
	c.Signal()
	m.Unlock()
	<-done
}

func pingpongChan(b *testing.B) {
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		for range ping {
			pong <- struct{}{}
		}
	}()
	for i := 0; i < b.N; i++ {
		ping <- struct{}{}
		<-pong
	}
	close(ping)
}

func main() {
	reps := flag.Int("reps", 3, "repetitions")
	suffix := flag.String("suffix", "go", "variant name")
	flag.Parse()
	benches := []struct {
		topic string
		ops   float64
		fn    func(*testing.B)
	}{
		{"yield", 2, yield}, {"create", 1, create}, {"mutex", 1, mutex},
		{"pingpong", 1, pingpongCond}, {"pingpong", 1, pingpongChan},
	}
	type entry map[string]interface{}
	var out []entry
	for i, bm := range benches {
		name := bm.topic + "/" + *suffix
		if bm.topic == "pingpong" && i == len(benches)-1 {
			name += "_chan"
		}
		for r := 0; r < *reps; r++ {
			res := testing.Benchmark(bm.fn)
			out = append(out, entry{"name": name, "run_name": name, "run_type": "iteration",
				"repetitions": *reps, "repetition_index": r, "iterations": res.N,
				"real_time": float64(res.T.Nanoseconds()) / float64(res.N), "time_unit": "ns",
				"ops": bm.ops})
		}
	}
	doc := map[string]interface{}{
		"context": map[string]interface{}{
			"executable": "bench/go/peers.go", "go_version": runtime.Version(),
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
