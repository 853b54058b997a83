package terms

import "testing"

func TestTheCLIIsTheDefaultAndAFrontEndMapsItsOwn(t *testing.T) {
	var cli Terms
	if cli.Of("max-surge") != "--max-surge" || cli.With("strategy", "eks") != "--strategy=eks" {
		t.Errorf("the CLI's terms: %q, %q", cli.Of("max-surge"), cli.With("strategy", "eks"))
	}
	ctl := Terms{"max-surge": "spec.strategy.maxSurge", "mode=managed": "spec.mode: Managed"}
	if ctl.With("mode", "managed") != "spec.mode: Managed" {
		t.Errorf("a value spelled otherwise: %q", ctl.With("mode", "managed"))
	}
	if ctl.Of("max-surge") != "spec.strategy.maxSurge" || ctl.With("max-surge", "3") != "spec.strategy.maxSurge: 3" || ctl.Of("force") != "--force" {
		t.Errorf("a front end's terms: %q, %q, %q", ctl.Of("max-surge"), ctl.With("max-surge", "3"), ctl.Of("force"))
	}
}
