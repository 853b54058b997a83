package awssim

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// pageSpec is how a list call pages, as its API reference says: the
// parameter naming the page size, its default and bounds, and the opaque
// NextToken it hands back while more remain.
type pageSpec struct {
	action          string // names the token, so a token of one call is refused by another
	sizeParam       string // MaxRecords (Auto Scaling), MaxResults (EC2)
	def, min, max   int    // def 0: everything in one answer unless a size is asked for
	invalidCode     string // the error code of a bad size or token
	sizeMessageForm string // how the service words a bad size: %[1]d the value, %[2]d min, %[3]d max
}

// window returns the slice [from, to) of n items this call answers with,
// and the NextToken to return ("" on the last page).
func (p pageSpec) window(form url.Values, n int) (from, to int, next string, err error) {
	size, set, err := optInt(form, p.sizeParam)
	if err != nil {
		return 0, 0, "", err
	}
	if set && (size < p.min || size > p.max) {
		return 0, 0, "", &APIError{Code: p.invalidCode, Message: fmt.Sprintf(p.sizeMessageForm, size, p.min, p.max), Status: 400}
	}
	if !set {
		size = p.def
	}
	if tok := form.Get("NextToken"); tok != "" {
		v, ok := strings.CutPrefix(tok, p.action+"-")
		from, err = strconv.Atoi(v)
		if !ok || err != nil || from < 0 || from > n {
			return 0, 0, "", &APIError{Code: p.invalidCode, Message: "The token '" + tok + "' is invalid.", Status: 400}
		}
	}
	if size == 0 {
		return from, n, "", nil
	}
	to = min(from+size, n)
	if to < n {
		next = fmt.Sprintf("%s-%d", p.action, to)
	}
	return from, to, next, nil
}

var (
	scalingActivitiesPages = pageSpec{action: "activities", sizeParam: "MaxRecords", def: 100, min: 1, max: 100, invalidCode: "ValidationError",
		sizeMessageForm: "1 validation error detected: Value '%[1]d' at 'maxRecords' failed to satisfy constraint: Member must have value between %[2]d and %[3]d"}
	autoScalingGroupsPages = pageSpec{action: "groups", sizeParam: "MaxRecords", def: 50, min: 1, max: 100, invalidCode: "ValidationError",
		sizeMessageForm: "1 validation error detected: Value '%[1]d' at 'maxRecords' failed to satisfy constraint: Member must have value between %[2]d and %[3]d"}
	instancesPages = pageSpec{action: "instances", sizeParam: "MaxResults", def: 0, min: 5, max: 1000, invalidCode: "InvalidParameterValue",
		sizeMessageForm: "Value ( %[1]d ) for parameter maxResults is invalid. Expecting a value between %[2]d and %[3]d."}
)
