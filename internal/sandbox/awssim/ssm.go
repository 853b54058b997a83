package awssim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

const ssmContentType = "application/x-amz-json-1.1"

type ssmParameter struct {
	Name             string  `json:"Name"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int     `json:"Version"`
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
	LastModifiedDate float64 `json:"LastModifiedDate"`
}

func (a *Account) param(name string) (ssmParameter, bool) {
	v, ok := a.params[name]
	if !ok {
		return ssmParameter{}, false
	}
	return ssmParameter{
		Name: name, Type: "String", Value: v, Version: 1, DataType: "text",
		ARN:              fmt.Sprintf("arn:aws:ssm:%s::parameter%s", a.Region, name),
		LastModifiedDate: 1.7630208e9,
	}, true
}

// serveSSM answers the awsJson1.1 calls: GetParameter and GetParameters,
// the AMI lookups eksctl and noderoll make.
func (s *Server) serveSSM(w http.ResponseWriter, r *http.Request) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	if e := s.acct.throttled("ssm"); e != nil {
		s.acct.logCall(Call{Service: "ssm", Action: action, AccessKey: accessKeyOf(r), Error: e.Code})
		writeJSONError(w, e, ssmContentType)
		return
	}
	s.acct.logCall(Call{Service: "ssm", Action: action, AccessKey: accessKeyOf(r)})
	if f := s.acct.takeFault("ssm", action); f != nil {
		f.stall(r.Context())
		if e := f.apiError(); e != nil {
			writeJSONError(w, e, ssmContentType)
			return
		}
	}
	var req struct {
		Name  string   `json:"Name"`
		Names []string `json:"Names"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSONError(w, &APIError{Code: "SerializationException", Message: err.Error(), Status: 400}, ssmContentType)
		return
	}
	a := s.acct
	a.mu.Lock()
	var out any
	var apiErr *APIError
	switch action {
	case "GetParameter":
		p, ok := a.param(req.Name)
		if !ok {
			apiErr = &APIError{Code: "ParameterNotFound", Message: fmt.Sprintf("Parameter %s not found.", req.Name), Status: 400}
		}
		out = map[string]any{"Parameter": p}
	case "GetParameters":
		found, invalid := []ssmParameter{}, []string{}
		for _, n := range req.Names {
			if p, ok := a.param(n); ok {
				found = append(found, p)
			} else {
				invalid = append(invalid, n)
			}
		}
		sort.Strings(invalid)
		out = map[string]any{"Parameters": found, "InvalidParameters": invalid}
	default:
		apiErr = &APIError{Code: "InvalidAction", Message: "The action " + action + " is not served by this endpoint.", Status: 400}
	}
	a.mu.Unlock()
	if apiErr != nil {
		writeJSONError(w, apiErr, ssmContentType)
		return
	}
	writeJSON(w, http.StatusOK, ssmContentType, out)
}
