package awssim

import (
	"encoding/xml"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// awsTime is the timestamp form both query protocols use.
func awsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// list reads a query-protocol list: prefix.1, prefix.2, ... (EC2) or
// prefix.member.1, ... (Auto Scaling), whichever the caller names.
func list(form url.Values, prefix string) []string {
	var out []string
	for n := 1; ; n++ {
		v, ok := form[prefix+"."+strconv.Itoa(n)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// optInt reads an optional integer parameter.
func optInt(form url.Values, key string) (int, bool, error) {
	v := form.Get(key)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, validation("%s must be an integer, got %q", key, v)
	}
	return n, true, nil
}

func optBool(form url.Values, key string) bool { return strings.EqualFold(form.Get(key), "true") }

// queryResp wraps a result in the awsQuery envelope:
// <ActionResponse><ActionResult>…</ActionResult><ResponseMetadata>…
type queryResp struct {
	action, ns, reqID string
	result            any
}

func (q *queryResp) setRequestID(id string) { q.reqID = id }

func (q *queryResp) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Local: q.action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: q.ns}}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if q.result != nil {
		if err := e.EncodeElement(q.result, xml.StartElement{Name: xml.Name{Local: q.action + "Result"}}); err != nil {
			return err
		}
	}
	meta := struct {
		RequestID string `xml:"RequestId"`
	}{q.reqID}
	if err := e.EncodeElement(meta, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

// ec2Resp wraps a result in the ec2Query envelope: <ActionResponse> holding
// <requestId> and the result's members directly.
type ec2Resp struct {
	action string
	body   interface{ setRequestID(string) }
}

func (q *ec2Resp) setRequestID(id string) { q.body.setRequestID(id) }

func (q *ec2Resp) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(q.body, xml.StartElement{
		Name: xml.Name{Local: q.action + "Response"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: "http://ec2.amazonaws.com/doc/2016-11-15/"}},
	})
}

type ec2Meta struct {
	RequestID string `xml:"requestId"`
}

func (m *ec2Meta) setRequestID(id string) { m.RequestID = id }

func notFoundf(code, format string, args ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...), Status: 400}
}
