package sandbox

import "testing"

func TestParseSampleReadsNameLabelsAndValue(t *testing.T) {
	s, ok := parseSample(`apiserver_flowcontrol_rejected_requests_total{flow_schema="noisy",priority_level="tiny",reason="queue-full"} 16`)
	if !ok || s.Name != "apiserver_flowcontrol_rejected_requests_total" || s.Labels["flow_schema"] != "noisy" || s.Labels["reason"] != "queue-full" || s.Value != 16 {
		t.Fatalf("got %+v %v", s, ok)
	}
	for _, bad := range []string{"# HELP x", "", "plain 3", `x{a="b"} notanumber`} {
		if _, ok := parseSample(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
