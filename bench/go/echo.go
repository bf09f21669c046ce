// echo.go - Go peer of bench/echo.cpp's servers: a goroutine per connection
// doing plain net.Conn Read/Write (Go's netpoller parks the goroutine), the
// idiomatic Go echo server.  It listens on loopback, prints "port N" on one
// line, and serves until killed.  The load comes from bench/echo.cpp's
// client: fiber_echo --connect 127.0.0.1:N (bench/run.py --echo does this).
//
//	go build -o echo_go echo.go && ./echo_go -procs 2
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: leave as the environment says)")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	// net.TCPConn sets TCP_NODELAY by default, as the C servers do by hand.
	fmt.Printf("port %d gomaxprocs %d\n", l.Addr().(*net.TCPAddr).Port, runtime.GOMAXPROCS(0))
	os.Stdout.Sync()
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			os.Exit(1)
		}
		go serve(c)
	}
}
