// Command franzgo-client runs franz-go, a strict Kafka client, against
// skiff's Kafka listener for tests/kafka_clients.rs.
//
// Usage:
//
//	franzgo-client -bootstrap HOST:PORT -topic T [-count N] [-partition P]
//	    [-group G] [-timeout 20s] [-sasl-plain USER:PASSWORD] produce|consume|group|ping
//
// -sasl-plain signs in with SASL PLAIN (over plaintext).
//
// Every mode prints one JSON object per line on stdout and exits non-zero
// with the reason on stderr:
//
//	produce  N records keyed key-I, valued value-I, header h=hv-I
//	         (idempotent, acks=all: franz-go's defaults)
//	consume  N records from the beginning of every partition (no group)
//	ping     connects and signs in (-topic unused), printing "pinged";
//	         a refused login is its error rather than a retried produce
//	group    a group member: prints "owned" after every assignment change,
//	         "record" per record, commits after each poll ("committed"),
//	         and leaves the group cleanly when a line "leave" arrives on
//	         stdin (or stdin closes); -timeout bounds the whole run
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

func emit(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	fmt.Println(string(b))
}

func recordEvent(r *kgo.Record) map[string]any {
	headers := [][]string{}
	for _, h := range r.Headers {
		headers = append(headers, []string{h.Key, string(h.Value)})
	}
	var key any
	if r.Key != nil {
		key = string(r.Key)
	}
	return map[string]any{
		"event": "record", "partition": r.Partition, "offset": r.Offset,
		"timestamp": r.Timestamp.UnixMilli(), "key": key, "value": string(r.Value),
		"headers": headers,
	}
}

type options struct {
	bootstrap string
	topic     string
	group     string
	count     int
	partition int
	timeout   time.Duration
	saslPlain string
}

// seed is the options every client starts with: the bootstrap broker and
// the SASL PLAIN login, if any.
func (o options) seed() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(o.bootstrap)}
	if o.saslPlain != "" {
		user, pass, _ := strings.Cut(o.saslPlain, ":")
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	}
	return opts
}

func produce(ctx context.Context, o options) error {
	opts := append(o.seed(), kgo.ProducerLinger(5*time.Millisecond))
	if o.partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	records := make([]*kgo.Record, 0, o.count)
	for i := 0; i < o.count; i++ {
		r := &kgo.Record{
			Topic:   o.topic,
			Key:     []byte(fmt.Sprintf("key-%d", i)),
			Value:   []byte(fmt.Sprintf("value-%d", i)),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprintf("hv-%d", i))}},
		}
		if o.partition >= 0 {
			r.Partition = int32(o.partition)
		}
		records = append(records, r)
	}
	results := cl.ProduceSync(ctx, records...)
	if err := results.FirstErr(); err != nil {
		return err
	}
	for _, res := range results {
		emit(map[string]any{"event": "produced", "partition": res.Record.Partition,
			"offset": res.Record.Offset, "timestamp": res.Record.Timestamp.UnixMilli(), "key": string(res.Record.Key), "value": string(res.Record.Value)})
	}
	emit(map[string]any{"event": "done", "count": o.count})
	return nil
}

func ping(ctx context.Context, o options) error {
	cl, err := kgo.NewClient(o.seed()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return err
	}
	emit(map[string]any{"event": "pinged"})
	return nil
}

func consume(ctx context.Context, o options) error {
	cl, err := kgo.NewClient(append(o.seed(), kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := 0
	for seen < o.count {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d of %d records: %w", seen, o.count, err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch %s/%d: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if seen < o.count {
				emit(recordEvent(r))
				seen++
			}
		})
	}
	emit(map[string]any{"event": "done", "count": seen})
	return nil
}

// owned tracks the partitions this member holds across cooperative
// rebalances, which hand out and take back partitions incrementally.
type owned struct {
	mu    sync.Mutex
	parts map[int32]bool
}

func (w *owned) change(add bool, assigned map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ps := range assigned {
		for _, p := range ps {
			if add {
				w.parts[p] = true
			} else {
				delete(w.parts, p)
			}
		}
	}
	list := []int{}
	for p := range w.parts {
		list = append(list, int(p))
	}
	sort.Ints(list)
	emit(map[string]any{"event": "owned", "partitions": list})
}

func group(ctx context.Context, o options) error {
	w := &owned{parts: map[int32]bool{}}
	cl, err := kgo.NewClient(append(o.seed(),
		kgo.ConsumerGroup(o.group),
		kgo.ConsumeTopics(o.topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { w.change(true, a) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { w.change(false, r) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { w.change(false, l) }),
	)...)
	if err != nil {
		return err
	}
	leave := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			if scanner.Text() == "leave" {
				break
			}
		}
		close(leave)
	}()
	for {
		select {
		case <-leave:
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				cl.Close()
				return fmt.Errorf("final commit: %w", err)
			}
			cl.Close() // leaves the group
			emit(map[string]any{"event": "left"})
			return nil
		default:
		}
		pollCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			cl.Close()
			return fmt.Errorf("no leave request before the timeout: %w", err)
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				cl.Close()
				return fmt.Errorf("fetch %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		n := 0
		fetches.EachRecord(func(r *kgo.Record) { emit(recordEvent(r)); n++ })
		if n > 0 {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				cl.Close()
				return fmt.Errorf("commit: %w", err)
			}
			emit(map[string]any{"event": "committed", "records": n})
		}
	}
}

func main() {
	var o options
	flag.StringVar(&o.bootstrap, "bootstrap", "", "host:port of the Kafka listener")
	flag.StringVar(&o.topic, "topic", "", "topic")
	flag.StringVar(&o.group, "group", "franz-go-test", "consumer group (group mode)")
	flag.IntVar(&o.count, "count", 10, "records to produce or consume")
	flag.IntVar(&o.partition, "partition", -1, "partition to produce to (-1: the client's partitioner)")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Second, "bound on the whole run")
	flag.StringVar(&o.saslPlain, "sasl-plain", "", "USER:PASSWORD to sign in with SASL PLAIN")
	flag.Parse()
	if o.bootstrap == "" || o.topic == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: franzgo-client -bootstrap HOST:PORT -topic T [flags] produce|consume|group|ping")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	modes := map[string]func(context.Context, options) error{"produce": produce, "consume": consume, "group": group, "ping": ping}
	run, ok := modes[flag.Arg(0)]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
}
