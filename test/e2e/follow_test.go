package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/noderoll/noderoll/internal/progress"
)

// terminals runs commands in real terminals: windows of a tmux server of
// the test's own (its own socket), stopped by its pid when the test ends.
type terminals struct {
	t    *testing.T
	sock string
}

func startTerminals(t *testing.T) *terminals {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "tmux.conf")
	// Every line a run prints stays in the pane's history to be read.
	if err := os.WriteFile(conf, []byte("set -g history-limit 50000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tm := &terminals{t: t, sock: filepath.Join(dir, "tmux.sock")}
	tm.tmux("-f", conf, "new-session", "-d", "-s", "e2e", "-x", "220", "-y", "50", "-n", "idle", "sleep 3600")
	pid, err := strconv.Atoi(strings.TrimSpace(tm.tmux("display-message", "-p", "#{pid}")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGTERM) })
	return tm
}

func (tm *terminals) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// run starts a command in a new window, with exactly env; when it ends
// the window says so ("<name> exited N") and stays.
func (tm *terminals) run(name string, env []string, argv ...string) {
	tm.t.Helper()
	var script strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&script, "export %s=%s\n", k, strconv.Quote(v))
	}
	for k, a := range argv {
		argv[k] = strconv.Quote(a)
	}
	fmt.Fprintf(&script, "%s\necho \"%s exited $?\"\nsleep 3600\n", strings.Join(argv, " "), name)
	path := filepath.Join(tm.t.TempDir(), name+".sh")
	if err := os.WriteFile(path, []byte(script.String()), 0o755); err != nil {
		tm.t.Fatal(err)
	}
	tm.tmux("new-window", "-d", "-t", "e2e", "-n", name, "bash "+path)
}

// screen is everything a window showed: its history and its screen.
func (tm *terminals) screen(name string) string {
	return tm.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "e2e:"+name)
}

// The seed's upgrade runs in one terminal while `noderoll watch` follows it
// from another, and a third follower reads the JSON stream: all tell the
// 3 -> 6 -> 3 story from what the cluster records. The run's report,
// written at its end, renders in headless Chromium with a bar for every
// node and a series for every budget.
func TestWatchFollowsTheSeedFromAnotherTerminalAndTheReportRendersInChromium(t *testing.T) {
	t.Parallel()
	s := StartSandbox(t)
	bin := noderollBinary(t)
	env := append(cleanEnv(), s.env...)
	group := []string{"--cluster=eksworkshop-eksctl", "--name=nodegroup"}

	tm := startTerminals(t)
	tm.run("watch", env, append(append([]string{bin, "watch", "nodegroup"}, group...), "--wait")...)
	stream := s.Start(append(append([]string{"watch", "nodegroup"}, group...), "--wait", "-o", "json")...)
	// Both watchers are waiting before the upgrade starts.
	waitUntil(t, 30*time.Second, "the watch waits for an upgrade", func() bool {
		return strings.Contains(tm.screen("watch"), "waiting for an upgrade of eksworkshop-eksctl/nodegroup") && strings.Contains(stream.out.String(), "waiting for an upgrade")
	})
	reportFile := filepath.Join(t.TempDir(), "upgrade.html")
	tm.run("upgrade", env, append(append([]string{bin, "upgrade", "nodegroup"}, group...),
		"--kubernetes-version=1.37", "--post-cordon-wait=2s", "--report="+reportFile)...)
	waitUntil(t, 5*time.Minute, "the upgrade and its watch end", func() bool {
		return strings.Contains(tm.screen("upgrade"), "upgrade exited") && strings.Contains(tm.screen("watch"), "watch exited")
	})
	up, watch := tm.screen("upgrade"), tm.screen("watch")
	t.Logf("upgrade's terminal:\n%s\nwatch's terminal:\n%s", up, watch)
	for name, screen := range map[string]string{"upgrade": up, "watch": watch} {
		for _, want := range []string{"[3/9] Surge: desired 3 -> 6", "[9/9] Sizes restored", "Terminate: i-", name + " exited 0"} {
			if !strings.Contains(screen, want) {
				t.Errorf("%s's terminal does not say %q", name, want)
			}
		}
		if n := strings.Count(screen, "[7/9] Terminate"); n != 3 {
			t.Errorf("%s's terminal tells %d terminations; want 3", name, n)
		}
	}
	if !strings.Contains(up, "3 before, 6 at peak, 3 after") {
		t.Error("the upgrade's summary does not tell 3 -> 6 -> 3")
	}
	if !strings.Contains(watch, "Completed: nodes 3 -> 6 -> 3") || !strings.Contains(watch, "us-west-2a 0 old/1 new, us-west-2b 0 old/1 new, us-west-2c 0 old/1 new") {
		t.Error("the watch does not end on 3 -> 6 -> 3, one new node in each zone")
	}

	// The JSON stream: one event a line, every line an event.
	if code := stream.Wait(); code != 0 {
		t.Errorf("watch -o json exited %d", code)
	}
	var events []progress.Event
	sc := bufio.NewScanner(strings.NewReader(stream.out.String()))
	for sc.Scan() {
		var ev progress.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("a line of watch -o json is no event: %v\n%s", err, sc.Text())
		}
		events = append(events, ev)
	}
	came, left, withETA, steps := 0, 0, 0, map[int]int{}
	for _, ev := range events {
		switch {
		case ev.Kind == "node" && ev.Node.Change == "+" && ev.Node.Old != nil && !*ev.Node.Old:
			came++
		case ev.Kind == "node" && ev.Node.Change == "-" && ev.Node.Old != nil && *ev.Node.Old:
			left++
		case ev.Kind == "step":
			steps[ev.Step]++
		}
		if ev.RemainingSeconds != nil {
			withETA++
		}
	}
	end := events[len(events)-1]
	if came != 3 || left != 3 || steps[7] != 3 || steps[3] != 1 || withETA == 0 {
		t.Errorf("the stream tells %d new nodes coming, %d old leaving, steps %v, %d events with an ETA; want 3, 3, three Terminate, one Surge, some", came, left, steps, withETA)
	}
	if end.Kind != "end" || end.Phase != "Completed" || end.Initial != 3 || end.Peak != 6 || end.Nodes != 3 || len(end.Zones) != 3 {
		t.Errorf("the stream ends on %+v; want Completed, 3 -> 6 -> 3 in 3 zones", end)
	}

	// The report: its page in a real browser.
	page, err := os.ReadFile(reportFile)
	if err != nil {
		t.Fatalf("upgrade --report wrote nothing: %v", err)
	}
	again := s.Noderoll(append(append([]string{"report", "nodegroup"}, group...), "--out=-")...)
	if again.Stdout != string(page) {
		t.Error("noderoll report does not write the page upgrade --report wrote")
	}
	rendered := renderInChromium(t, reportFile, os.Getenv("NODEROLL_REPORT_SCREENSHOT"))
	if rendered.Nodes != 6 || rendered.NodesWithBars != 6 {
		t.Errorf("the rendered report has %d node rows, %d with a visible bar; want 6 and 6", rendered.Nodes, rendered.NodesWithBars)
	}
	if rendered.Budgets < 4 || rendered.BudgetsDrawn != rendered.Budgets {
		t.Errorf("the rendered report has %d budget series, %d drawn; want the seed's 4 budgets, all drawn", rendered.Budgets, rendered.BudgetsDrawn)
	}
	if !strings.HasPrefix(rendered.Phase, "Completed") || rendered.Requests != 0 {
		t.Errorf("rendered phase %q, %d requests beyond the page; want Completed and none", rendered.Phase, rendered.Requests)
	}
}

// rendered is what the browser shows of a report.
type rendered struct {
	Nodes, NodesWithBars  int
	Budgets, BudgetsDrawn int
	Phase                 string
	Requests              int
}

// renderInChromium opens a report in headless Chromium (Debian's, which
// test/run.sh installs) and reads the page as drawn: each node's row and
// the width of its bar, each budget's series and the length of its line.
// With a screenshot path it also saves the page as a PNG.
func renderInChromium(t *testing.T, file, screenshot string) rendered {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("/usr/bin/chromium"), chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1120, 900), chromedp.Flag("disable-quic", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+file), chromedp.WaitVisible("#nodes")); err != nil {
		t.Fatalf("opening the report in Chromium: %v", err)
	}
	r, err := chromedp.Run(ctx, chromedp.Evaluate[rendered](`(() => {
		const nodes = [...document.querySelectorAll("g.node[data-node]")];
		const budgets = [...document.querySelectorAll("g.series[data-budget]")];
		return {
			Nodes: nodes.length,
			NodesWithBars: nodes.filter(g => [...g.querySelectorAll("rect.seg")].some(r => r.getBoundingClientRect().width > 0)).length,
			Budgets: budgets.length,
			BudgetsDrawn: budgets.filter(g => g.querySelector("path.value").getTotalLength() > 0 && g.querySelector("path.ref").getTotalLength() > 0).length,
			Phase: document.getElementById("phase").textContent,
			Requests: performance.getEntriesByType("resource").length,
		};
	})()`))
	if err != nil {
		t.Fatalf("reading the rendered report: %v", err)
	}
	if screenshot != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
