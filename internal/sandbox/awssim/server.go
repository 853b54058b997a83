package awssim

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// APIError is an error as AWS returns it: a code, a message, an HTTP status.
type APIError struct {
	Code    string
	Message string
	Status  int
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func validation(format string, args ...any) *APIError {
	return &APIError{Code: "ValidationError", Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

// Fault is a one-shot error injected for a service's action, for tests of how
// clients cope (Throttling, ScalingActivityInProgress...).
type Fault struct {
	Service string `json:"service"` // autoscaling, ec2, ssm, eks
	Action  string `json:"action"`  // e.g. TerminateInstanceInAutoScalingGroup
	Code    string `json:"code"`    // empty: answer as usual (with After and Delay: a stall)
	Message string `json:"message"`
	Status  int    `json:"status"`
	Count   int    `json:"count"` // how many calls fail; at least 1
	// After applies the call first and fails (or stalls) only its answer,
	// as when a response is lost on the way back: the client cannot tell
	// whether the call took. Auto Scaling and EC2 only.
	After bool `json:"after,omitempty"`
	// DelaySeconds holds the answer back this long.
	DelaySeconds float64 `json:"delaySeconds,omitempty"`
}

// Call is one API call the endpoint received, as CloudTrail would log it:
// the sandbox's account of what a client really did.
type Call struct {
	Time    time.Time         `json:"time"`
	Service string            `json:"service"`
	Action  string            `json:"action"`
	Params  map[string]string `json:"params,omitempty"` // the query protocols' parameters
	Error   string            `json:"error,omitempty"`  // the error code answered, if any
	// AccessKey signed the call: who made it (an assumed role's keys start ASIA).
	AccessKey string `json:"accessKey,omitempty"`
}

// maxCalls bounds the call log; the oldest calls go first.
const maxCalls = 200000

func (a *Account) logCall(c Call) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c.Time = a.clock.Now().UTC()
	if len(a.calls) >= maxCalls {
		a.calls = a.calls[len(a.calls)-maxCalls/2:]
	}
	a.calls = append(a.calls, c)
}

// Calls returns the calls received, oldest first; action "" for all.
func (a *Account) Calls(action string) []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Call
	for _, c := range a.calls {
		if action == "" || c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// InjectFault makes the next Count calls of an action fail with the fault.
func (a *Account) InjectFault(f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f.Count < 1 {
		f.Count = 1
	}
	if f.Status == 0 {
		f.Status = http.StatusBadRequest
	}
	a.faults = append(a.faults, &f)
}

// SetThrottle makes a fraction of the calls (0 to 1) to the account's APIs
// answer as a throttled account's do; STS and the sandbox's own surface are
// left alone.
func (a *Account) SetThrottle(rate float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.throttle = rate
}

// throttled answers a call as its service does when the account is
// throttled, or nil (most calls, or all when no throttling is set).
func (a *Account) throttled(service string) *APIError {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.throttle <= 0 || service == "sts" || a.rng.Float64() >= a.throttle {
		return nil
	}
	switch service {
	case "ec2":
		return &APIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded.", Status: http.StatusServiceUnavailable}
	case "autoscaling":
		return &APIError{Code: "Throttling", Message: "Rate exceeded", Status: http.StatusBadRequest}
	case "servicequotas":
		return &APIError{Code: "TooManyRequestsException", Message: "Rate exceeded", Status: http.StatusBadRequest}
	default: // eks, ssm
		return &APIError{Code: "ThrottlingException", Message: "Rate exceeded", Status: http.StatusBadRequest}
	}
}

// takeFault returns the next fault armed for an action, or nil.
func (a *Account) takeFault(service, action string) *Fault {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, f := range a.faults {
		if f.Service == service && f.Action == action {
			f.Count--
			if f.Count == 0 {
				a.faults = append(a.faults[:k], a.faults[k+1:]...)
			}
			cp := *f
			return &cp
		}
	}
	return nil
}

// apiError is the error a fault answers with; nil for a stall alone.
func (f *Fault) apiError() *APIError {
	if f == nil || f.Code == "" {
		return nil
	}
	return &APIError{Code: f.Code, Message: f.Message, Status: f.Status}
}

func (f *Fault) stall(ctx context.Context) {
	if f == nil || f.DelaySeconds <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Duration(f.DelaySeconds * float64(time.Second))):
	}
}

// Server serves the account over HTTP, wire-compatible with aws-sdk-go-v2
// for the calls noderoll makes. One endpoint serves every service; the
// service is read from the SigV4 credential scope, as AWS front ends route.
type Server struct {
	acct *Account
	log  *slog.Logger
}

// NewServer returns the HTTP handler for an account.
func NewServer(acct *Account, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{acct: acct, log: log}
}

var (
	scopeRE     = regexp.MustCompile(`Credential=[^/]+/[0-9]+/[^/]+/([a-z0-9-]+)/aws4_request`)
	accessKeyRE = regexp.MustCompile(`Credential=([^/]+)/`)
)

// accessKeyOf returns the access key that signed a request.
func accessKeyOf(r *http.Request) string {
	if m := accessKeyRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	return ""
}

func serviceOf(r *http.Request) string {
	if m := scopeRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	switch {
	case strings.HasPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM."):
		return "ssm"
	case strings.HasPrefix(r.Header.Get("X-Amz-Target"), "ServiceQuotasV20190624."):
		return "servicequotas"
	case strings.HasPrefix(r.URL.Path, "/clusters"):
		return "eks"
	}
	return ""
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveAdmin(w, r)
		return
	}
	svc := serviceOf(r)
	if svc == "" || svc == "autoscaling" || svc == "ec2" || svc == "sts" || svc == "cloudformation" {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if svc == "" {
			switch r.PostForm.Get("Version") {
			case "2011-01-01":
				svc = "autoscaling"
			case "2016-11-15":
				svc = "ec2"
			case "2011-06-15":
				svc = "sts"
			case "2010-05-15":
				svc = "cloudformation"
			}
		}
	}
	switch svc {
	case "autoscaling":
		s.serveQuery(w, r, svc, autoscalingActions, writeQueryError)
	case "ec2":
		s.serveQuery(w, r, svc, ec2Actions, writeEC2Error)
	case "sts":
		s.serveQuery(w, r, svc, stsActions, writeQueryError)
	case "cloudformation":
		s.serveQuery(w, r, svc, cloudformationActions, writeQueryError)
	case "ssm":
		s.serveSSM(w, r)
	case "eks":
		s.serveEKS(w, r)
	case "servicequotas":
		s.serveServiceQuotas(w, r)
	default:
		http.Error(w, "unknown service: sign requests with SigV4 for autoscaling, ec2, ssm, eks, sts or cloudformation", http.StatusBadRequest)
	}
}

type queryAction func(a *Account, form url.Values) (any, error)

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request, svc string, actions map[string]queryAction, writeErr func(http.ResponseWriter, *APIError, string)) {
	action := r.PostForm.Get("Action")
	reqID := s.acct.requestID()
	w.Header().Set("X-Amzn-Requestid", reqID) // on errors too, where clients read it
	s.log.Debug("call", "service", svc, "action", action)
	h, ok := actions[action]
	if !ok {
		writeErr(w, &APIError{Code: "InvalidAction", Message: fmt.Sprintf("The action %s is not valid for this web service.", action), Status: http.StatusBadRequest}, reqID)
		return
	}
	call := Call{Service: svc, Action: action, Params: map[string]string{}, AccessKey: accessKeyOf(r)}
	for k, v := range r.PostForm {
		if k != "Action" && k != "Version" && k != callerKeyParam && len(v) > 0 {
			call.Params[k] = v[0]
		}
	}
	r.PostForm.Set(callerKeyParam, call.AccessKey)
	if e := s.acct.throttled(svc); e != nil {
		call.Error = e.Code
		s.acct.logCall(call)
		writeErr(w, e, reqID)
		return
	}
	f := s.acct.takeFault(svc, action)
	if f != nil && !f.After {
		f.stall(r.Context())
		if e := f.apiError(); e != nil {
			call.Error = e.Code
			s.acct.logCall(call)
			writeErr(w, e, reqID)
			return
		}
	}
	out, err := h(s.acct, r.PostForm)
	if err != nil {
		apiErr, ok := err.(*APIError)
		if !ok {
			apiErr = &APIError{Code: "InternalFailure", Message: err.Error(), Status: http.StatusInternalServerError}
		}
		call.Error = apiErr.Code
		s.acct.logCall(call)
		writeErr(w, apiErr, reqID)
		return
	}
	s.acct.logCall(call)
	if f != nil && f.After {
		// The call took; its answer is held back or lost.
		f.stall(r.Context())
		if e := f.apiError(); e != nil {
			writeErr(w, e, reqID)
			return
		}
	}
	body, err := xml.Marshal(withRequestID(out, reqID))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-Amzn-Requestid", reqID)
	writeBody(w, http.StatusOK, "text/xml", append([]byte(xml.Header), body...))
}

// writeBody writes a whole response with its Content-Length, as AWS does;
// a chunked body leaves the SDK a trailer to discard after decoding.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (a *Account) requestID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.uuid()
}

// requestIDSetter lets each response struct carry the request ID where its
// protocol puts it.
type requestIDSetter interface{ setRequestID(string) }

func withRequestID(out any, id string) any {
	if s, ok := out.(requestIDSetter); ok {
		s.setRequestID(id)
	}
	return out
}

// writeQueryError writes the awsQuery error envelope (Auto Scaling).
func writeQueryError(w http.ResponseWriter, e *APIError, reqID string) {
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	type errBody struct {
		Type    string
		Code    string
		Message string
	}
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     errBody
		RequestID string `xml:"RequestId"`
	}{Error: errBody{typ, e.Code, e.Message}, RequestID: reqID})
	writeBody(w, e.Status, "text/xml", body)
}

// writeEC2Error writes the ec2Query error envelope.
func writeEC2Error(w http.ResponseWriter, e *APIError, reqID string) {
	type errBody struct {
		Code    string
		Message string
	}
	body, _ := xml.Marshal(struct {
		XMLName   xml.Name  `xml:"Response"`
		Errors    []errBody `xml:"Errors>Error"`
		RequestID string    `xml:"RequestID"`
	}{Errors: []errBody{{e.Code, e.Message}}, RequestID: reqID})
	writeBody(w, e.Status, "text/xml", body)
}

// writeJSONError writes the error shape of the JSON protocols (SSM, EKS).
func writeJSONError(w http.ResponseWriter, e *APIError, contentType string) {
	w.Header().Set("X-Amzn-Errortype", e.Code)
	writeJSON(w, e.Status, contentType, map[string]string{"__type": e.Code, "message": e.Message})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeBody(w, status, contentType, body)
}

// serveAdmin is the sandbox's own control surface (not an AWS API): faults,
// capacity, and a health probe for whoever started the process.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_sim/healthz":
		_, _ = io.WriteString(w, "ok\n")
	case "/_sim/calls":
		writeJSON(w, http.StatusOK, "application/json", s.acct.Calls(r.URL.Query().Get("action")))
	case "/_sim/faults":
		var f Fault
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil || f.Service == "" || f.Action == "" || (f.Code == "" && f.DelaySeconds <= 0) {
			http.Error(w, "want JSON {service, action, code, message, status, count, after, delaySeconds}: a code, a delay or both", http.StatusBadRequest)
			return
		}
		s.acct.InjectFault(f)
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/throttle":
		var t struct {
			Rate float64 `json:"rate"`
		}
		if err := json.NewDecoder(r.Body).Decode(&t); err != nil || t.Rate < 0 || t.Rate > 1 {
			http.Error(w, "want JSON {rate}: the fraction of calls throttled, 0 to 1", http.StatusBadRequest)
			return
		}
		s.acct.SetThrottle(t.Rate)
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/quota":
		var q struct {
			Code  string   `json:"code"`
			Value *float64 `json:"value"`
		}
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Value == nil {
			http.Error(w, "want JSON {code, value}: an EC2 vCPU quota code and its new value", http.StatusBadRequest)
			return
		}
		if err := s.acct.SetQuota(q.Code, *q.Value); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/slow-scaling":
		var b struct {
			Seconds float64 `json:"seconds"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Seconds < 0 {
			http.Error(w, "want JSON {seconds}: how much longer every launch and termination takes (0 to end it)", http.StatusBadRequest)
			return
		}
		s.acct.SlowScaling(time.Duration(b.Seconds * float64(time.Second)))
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/bad-boots":
		var b struct {
			Count int `json:"count"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Count < 0 {
			http.Error(w, "want JSON {count}: how many instances boot without joining the cluster", http.StatusBadRequest)
			return
		}
		s.acct.BadBoots(b.Count)
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/kill-instance":
		var k struct {
			InstanceID string `json:"instanceId"`
		}
		if err := json.NewDecoder(r.Body).Decode(&k); err != nil || k.InstanceID == "" {
			http.Error(w, "want JSON {instanceId}", http.StatusBadRequest)
			return
		}
		if err := s.acct.KillInstance(k.InstanceID); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "/_sim/releases":
		var q struct{ Minor, Date string }
		if err := json.NewDecoder(r.Body).Decode(&q); err != nil || q.Minor == "" || q.Date == "" {
			http.Error(w, "want JSON {minor, date}: the Kubernetes minor and the release's date, YYYYMMDD", http.StatusBadRequest)
			return
		}
		rel, err := s.acct.PublishRelease(q.Minor, q.Date)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rel)
	case "/_sim/capacity":
		var c struct {
			AZ    string `json:"az"`
			Count int    `json:"count"`
		}
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.AZ == "" {
			http.Error(w, "want JSON {az, count}; a negative count lifts the limit", http.StatusBadRequest)
			return
		}
		s.acct.SetCapacity(c.AZ, c.Count)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}
