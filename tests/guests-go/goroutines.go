// goroutines: a static Go program (CGO_ENABLED=0) that exercises what Go's runtime needs of
// threads and signals: clone'd Ms, futexes, sigaltstack and SA_ONSTACK handlers, SIGURG
// preemption, os/signal, timers, and the GC's madvise/munmap. Its output is deterministic, so
// tests/e2e/golang.sh compares it natively and under km. Stdlib only.
//
// Usage:
//
//	goroutines                  every part, then "done"
//	goroutines compute ROUNDS   "ready", then only the workers (ROUNDS jobs): for snapshots
//	goroutines sleep ROUNDS     the same after a time.Sleep (its timer starts the netpoller's
//	                            epoll fd and pipe, which a snapshot must carry)
//	goroutines handlers         "ready" while goroutines compute; then for each SIGUSR1 from
//	                            outside "usr1", for SIGTERM "term" and exit 0
//	goroutines busy             "ready" while goroutines compute without end: signals from
//	                            outside take the runtime's default actions
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// collatz returns the total number of Collatz steps for every start in [lo, hi).
func collatz(lo, hi uint64) uint64 {
	var steps uint64
	for n := lo; n < hi; n++ {
		for x := n; x != 1; steps++ {
			if x%2 == 0 {
				x /= 2
			} else {
				x = 3*x + 1
			}
		}
	}
	return steps
}

// workers: 64 goroutines take ranges from one channel and send results on another.
func workers(rounds int) {
	type result struct{ id, steps uint64 }
	jobs := make(chan uint64)
	results := make(chan result)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- result{j, collatz(j*1000+1, j*1000+1001)}
			}
		}()
	}
	go func() {
		for j := uint64(0); j < uint64(rounds); j++ {
			jobs <- j
		}
		close(jobs)
	}()
	go func() { wg.Wait(); close(results) }()
	var all []result
	for r := range results {
		all = append(all, r)
	}
	sort.Slice(all, func(a, b int) bool { return all[a].id < all[b].id })
	var total, mix uint64
	for _, r := range all {
		total += r.steps
		mix = mix*1000003 + r.steps
	}
	fmt.Printf("workers: %d jobs, %d steps, mix %x\n", len(all), total, mix)
}

// mutex: 64 goroutines increment one counter under a sync.Mutex.
func mutex() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
				if i%500 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("mutex: counter %d\n", counter)
}

// timers: a sleep, time.After racing a slower timer, and a ticker's ticks.
func timers() {
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	slept := time.Since(start) >= 20*time.Millisecond
	var first string
	select {
	case <-time.After(10 * time.Millisecond):
		first = "after-10ms"
	case <-time.After(2 * time.Second):
		first = "after-2s"
	}
	t := time.NewTicker(5 * time.Millisecond)
	ticks := 0
	for range t.C {
		ticks++
		if ticks == 5 {
			break
		}
	}
	t.Stop()
	fmt.Printf("timers: slept %v, first %s, ticks %d\n", slept, first, ticks)
}

// memory: a 256 MiB allocation, touched and dropped, the GC run a few times and memory returned
// to the OS (madvise/munmap); then many small allocations from several goroutines.
func memory() {
	big := make([]byte, 256<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = byte(i >> 12)
	}
	var sum uint64
	for i := 0; i < len(big); i += 4096 {
		sum += uint64(big[i])
	}
	big = nil
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var wg sync.WaitGroup
	var kept [8]int
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var m map[int][]byte
			for round := 0; round < 20; round++ {
				m = make(map[int][]byte)
				for i := 0; i < 2000; i++ {
					m[i] = make([]byte, 64+i%512)
				}
			}
			kept[g] = len(m)
		}(g)
	}
	wg.Wait()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("memory: sum %d, kept %v, gc ran %v\n", sum, kept, ms.NumGC >= 4)
}

// signals: SIGUSR1 sent to the process itself arrives on a channel via os/signal.
func signals() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		fmt.Printf("signals: kill: %v\n", err)
		return
	}
	select {
	case s := <-c:
		fmt.Printf("signals: got %v\n", s)
	case <-time.After(10 * time.Second):
		fmt.Printf("signals: SIGUSR1 did not arrive\n")
	}
	signal.Stop(c)
}

// preempt: with GOMAXPROCS(1), a goroutine spins in a loop without calls until main sets a flag;
// main runs again only if the runtime preempts the spinner asynchronously (SIGURG to its thread).
func preempt() {
	old := runtime.GOMAXPROCS(1)
	var stop, spins uint64
	done := make(chan uint64)
	go func() {
		var n uint64
		for atomic.LoadUint64(&stop) == 0 {
			n++
		}
		done <- n
	}()
	runtime.Gosched()
	time.Sleep(30 * time.Millisecond)
	atomic.StoreUint64(&stop, 1)
	spins = <-done
	runtime.GOMAXPROCS(old)
	fmt.Printf("preempt: main ran while a goroutine spun: %v\n", spins > 0)
}

// external: 8 goroutines compute without end while signals come from outside; with handlers,
// SIGUSR1 and SIGTERM arrive through os/signal.
func external(handlers bool) {
	c := make(chan os.Signal, 4)
	if handlers {
		signal.Notify(c, syscall.SIGUSR1, syscall.SIGTERM)
	}
	for g := 0; g < 8; g++ {
		go func(g uint64) {
			for j := g; ; j += 8 {
				collatz(j*100+1, j*100+101)
			}
		}(uint64(g))
	}
	fmt.Println("ready")
	for s := range c {
		if s == syscall.SIGUSR1 {
			fmt.Println("usr1")
		} else {
			fmt.Println("term")
			os.Exit(0)
		}
	}
}

func main() {
	runtime.GOMAXPROCS(4)
	if len(os.Args) == 3 && (os.Args[1] == "compute" || os.Args[1] == "sleep") {
		rounds, err := strconv.Atoi(os.Args[2])
		if err != nil || rounds < 1 {
			fmt.Fprintf(os.Stderr, "usage: goroutines [compute|sleep ROUNDS]\n")
			os.Exit(2)
		}
		if os.Args[1] == "sleep" {
			time.Sleep(time.Millisecond)
		}
		fmt.Println("ready")
		workers(rounds)
		return
	}
	if len(os.Args) == 2 && (os.Args[1] == "handlers" || os.Args[1] == "busy") {
		external(os.Args[1] == "handlers")
		return
	}
	timers()
	mutex()
	signals()
	preempt()
	memory()
	workers(200)
	fmt.Println("done")
}
