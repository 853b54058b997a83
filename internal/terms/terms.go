// Package terms lets the engine name a front end's options in its messages
// the way that front end's users write them: the CLI says --max-surge, the
// controller spec.strategy.maxSurge. Messages name an option by its CLI
// flag's name; a front end maps the names it spells otherwise.
package terms

// Terms names options by the CLI flag's name, without dashes. The zero
// value is the CLI's own.
type Terms map[string]string

// Of is how the front end writes option flag ("max-surge").
func (t Terms) Of(flag string) string {
	if s, ok := t[flag]; ok {
		return s
	}
	return "--" + flag
}

// With is how the front end writes option flag set to value: a mapping of
// "flag=value" itself first (a value spelled otherwise), then of flag.
func (t Terms) With(flag, value string) string {
	if s, ok := t[flag+"="+value]; ok {
		return s
	}
	if s, ok := t[flag]; ok {
		return s + ": " + value
	}
	return "--" + flag + "=" + value
}
