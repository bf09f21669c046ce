// skynet.go - Go peer of bench/bench_skynet.cpp: a 10-ary spawn tree of
// goroutines (go + an unbuffered channel per parent, the classic skynet),
// leaf ids summed and checked.  Prints Google-Benchmark-shaped JSON on stdout
// (one "iteration" entry per repetition; counter "ops" = goroutines per tree)
// so that papers/scripts/bench_table.py reads it like the C++ results.
//
//	GOMAXPROCS=1 go run skynet.go -size 1000000 -reps 5 -name skynet1m/go_p1
//
// Standard library only.  Each repetition is preceded by nothing; one untimed
// warm-up tree runs first, as in the C++ variants.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func skynet(c chan<- int64, num, size int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64)
	sub := size / 10
	for i := int64(0); i < 10; i++ {
		go skynet(rc, num+i*sub, sub)
	}
	var sum int64
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func tree(size int64) int64 {
	c := make(chan int64)
	go skynet(c, 0, size)
	return <-c
}

func main() {
	size := flag.Int64("size", 1000000, "leaves (a power of 10)")
	reps := flag.Int("reps", 3, "repetitions")
	name := flag.String("name", "skynet1m/go", "benchmark name")
	flag.Parse()

	var ults int64
	for n := *size; n >= 1; n /= 10 {
		ults += n
	}
	want := *size * (*size - 1) / 2
	type entry map[string]interface{}
	var out []entry
	tree(*size) // warm-up
	for r := 0; r < *reps; r++ {
		t0 := time.Now()
		got := tree(*size)
		el := time.Since(t0)
		e := entry{"name": *name, "run_name": *name, "run_type": "iteration",
			"repetitions": *reps, "repetition_index": r, "iterations": 1,
			"real_time": float64(el.Nanoseconds()) / 1e6, "time_unit": "ms", "ops": ults}
		if got != want {
			e["error_occurred"] = true
			e["error_message"] = fmt.Sprintf("wrong sum %d, expected %d", got, want)
		}
		out = append(out, e)
	}
	doc := map[string]interface{}{
		"context": map[string]interface{}{
			"executable": "bench/go/skynet.go", "go_version": runtime.Version(),
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
