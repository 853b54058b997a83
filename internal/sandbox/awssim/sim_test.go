package awssim

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeRegistrar records node calls instead of talking to a cluster.
type fakeRegistrar struct {
	mu    sync.Mutex
	nodes map[string]NodeSpec
}

func (f *fakeRegistrar) Register(_ context.Context, n NodeSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[n.Name] = n
	return nil
}

func (f *fakeRegistrar) Deregister(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nodes, name)
	return nil
}

type env struct {
	t     *testing.T
	url   string // the endpoint's address
	acct  *Account
	clock *clocktesting.FakeClock
	reg   *fakeRegistrar
	asg   *autoscaling.Client
	ec2   *ec2.Client
	ssm   *ssm.Client
	eks   *eks.Client
	// quotas answers GetServiceQuota for EC2's vCPU quotas.
	quotas *servicequotas.Client
	group  string
	cli    string // the AWS CLI binary awsCLI runs
}

var azs = []string{"us-west-2a", "us-west-2b", "us-west-2c"}

// newEnv serves a fresh account holding the seed's cluster and a managed
// group of 3 on the 1.36 AMI, booted.
func newEnv(t *testing.T) *env {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	acct := NewAccount("us-west-2", clk, Delays{Boot: 20 * time.Second, Shutdown: 5 * time.Second})
	srv := httptest.NewServer(NewServer(acct, nil))
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:       "us-west-2",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSANDBOX", "sandbox-secret", ""),
		BaseEndpoint: aws.String(srv.URL),
		// Connection errors only are retried, as every real client does: on
		// a loaded machine Go's transport may drop a connection whose
		// request write it has not seen finish. API errors come back as
		// they are, for the tests to check.
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Retryables = []retry.IsErrorRetryable{retry.RetryableConnectionError{}}
			})
		},
	}
	e := &env{
		t: t, url: srv.URL, acct: acct, clock: clk, reg: &fakeRegistrar{nodes: map[string]NodeSpec{}},
		asg: autoscaling.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg),
		ssm: ssm.NewFromConfig(cfg), eks: eks.NewFromConfig(cfg), quotas: servicequotas.NewFromConfig(cfg),
	}
	acct.CreateCluster("eksworkshop-eksctl", "1.37", "https://127.0.0.1:6443")
	name, err := acct.CreateNodeGroup(GroupSpec{
		Cluster: "eksworkshop-eksctl", Name: "nodegroup", Managed: true, AZs: azs,
		Min: 3, Max: 6, Desired: 3, InstanceType: "m5.large", ImageID: e.recommended("1.36"),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.group = name
	e.settle()
	return e
}

func (e *env) recommended(minor string) string {
	e.t.Helper()
	p, ok := e.acct.params["/aws/service/eks/optimized-ami/"+minor+"/amazon-linux-2023/x86_64/standard/recommended/image_id"]
	if !ok {
		e.t.Fatalf("no AMI for %s", minor)
	}
	return p
}

// settle runs the lifecycle long enough for every boot and shutdown to end.
func (e *env) settle() {
	for k := 0; k < 3; k++ {
		e.acct.Step(context.Background(), e.reg, nil)
		e.clock.Step(30 * time.Second)
		e.acct.Step(context.Background(), e.reg, nil)
	}
}

func (e *env) describe() *autoscaling.DescribeAutoScalingGroupsOutput {
	e.t.Helper()
	out, err := e.asg.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{e.group}})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(out.AutoScalingGroups) != 1 {
		e.t.Fatalf("want 1 group, got %d", len(out.AutoScalingGroups))
	}
	return out
}

// wantCode asserts err is an AWS API error with the given code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("want API error %s, got %v", code, err)
	}
	if apiErr.ErrorCode() != code {
		t.Fatalf("want error code %s, got %s (%s)", code, apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
}

// Every live instance has an address, and so a node name, of its own, however
// many identifiers the account has handed out meanwhile (request IDs,
// activities): found by the benchmark at 300 nodes, where a replacement
// took an old node's name and never got a Node.
func TestLiveInstancesNeverShareAnAddress(t *testing.T) {
	acct := NewAccount("us-west-2", clocktesting.NewFakeClock(time.Now()), Delays{})
	acct.mu.Lock()
	defer acct.mu.Unlock()
	seen := map[string]string{}
	for k := range 3000 {
		for range 7 {
			acct.nextID("r-", 8) // identifiers of everything else
		}
		ip := acct.freeIP(k % 3)
		if id, dup := seen[ip]; dup {
			t.Fatalf("launch %d got %s, held by %s", k, ip, id)
		}
		id := acct.nextID("i-0", 16)
		seen[ip] = id
		acct.instances[id] = &Instance{ID: id, PrivateIP: ip, State: StateRunning}
		if k%2 == 1 { // half of them go again, freeing their address
			acct.instances[id].State = StateTerminated
			delete(seen, ip)
		}
	}
}
