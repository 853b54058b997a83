package sandbox

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestPodStopperWaitsTheStopDelayWithinTheGracePeriod(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	s := PodStopper{Clock: clocktesting.NewFakeClock(now), Default: time.Second}
	pod := func(delay string, graceLeft time.Duration) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &metav1.Time{Time: now.Add(graceLeft)}}}
		if delay != "" {
			p.Annotations = map[string]string{stopDelayAnnotation: delay}
		}
		return p
	}
	for _, c := range []struct {
		name      string
		delay     string
		graceLeft time.Duration
		want      time.Duration
	}{
		{"annotated", "3s", 30 * time.Second, 3 * time.Second},
		{"no annotation: the default", "", 30 * time.Second, time.Second},
		{"unreadable annotation: the default", "soon", 30 * time.Second, time.Second},
		{"grace ends first", "20s", 5 * time.Second, 5 * time.Second},
		{"grace over already", "3s", -time.Second, 0},
	} {
		if got := s.wait(pod(c.delay, c.graceLeft)); got != c.want {
			t.Errorf("%s: waits %v, want %v", c.name, got, c.want)
		}
	}
}
