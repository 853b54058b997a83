package awssim

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
)

// awsCLI runs the AWS CLI against the endpoint and decodes its JSON answer
// into out (nil: not decoded); it returns the exit code and stderr.
func (e *env) awsCLI(out any, args ...string) (int, string) {
	e.t.Helper()
	cmd := exec.Command(e.cli, append([]string{"--endpoint-url", e.url, "--output", "json", "--region", "us-west-2"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDSANDBOX", "AWS_SECRET_ACCESS_KEY=sandbox-secret", "AWS_PAGER=",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("aws %v: %v", args, err)
	}
	if code == 0 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("aws %v: %v\n%s", args, err, b)
		}
	}
	return code, stderr.String()
}

// Any AWS client, not only the Go SDK noderoll uses, can use the endpoint:
// the AWS CLI answers the calls noderoll makes as it does against AWS,
// filters and owners applied, lists paged with the CLI following
// NextToken, errors with AWS's codes. It runs with every major version of
// the CLI installed here: Debian's package (v2, /usr/bin/aws, which the
// README's test command installs) and any other on PATH (v1 from pip);
// with none it fails, saying how to install one.
func TestTheAWSCLIUsesTheEndpointAsAWS(t *testing.T) {
	clis := map[string]string{} // major version -> binary
	for _, bin := range []string{"aws", "/usr/bin/aws", "/usr/local/bin/aws"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "--version").CombinedOutput()
		if v, ok := strings.CutPrefix(string(out), "aws-cli/"); err == nil && ok && v != "" {
			if _, seen := clis["v"+v[:1]]; !seen {
				clis["v"+v[:1]] = path
			}
		}
	}
	if len(clis) == 0 {
		// Not a skip: on a fresh machine that would prove nothing. The
		// README's test command (test/run.sh) installs it.
		t.Fatal("the AWS CLI is not installed here: run `apt-get update && apt-get install -y awscli` (as root), or the README's test command, bash test/run.sh, which does")
	}
	for version, cli := range clis {
		t.Run(version, func(t *testing.T) {
			t.Logf("AWS CLI %s: %s", version, cli)
			e := newEnv(t)
			e.cli = cli
			checkTheAWSCLI(t, e)
		})
	}
}

func checkTheAWSCLI(t *testing.T, e *env) {

	var images struct {
		Images []struct{ ImageId, Name, OwnerId string }
	}
	name := "amazon-eks-node-al2023-x86_64-standard-1.37-*"
	if code, errOut := e.awsCLI(&images, "ec2", "describe-images", "--owners", publicImageOwner, "--filters", "Name=name,Values="+name); code != 0 {
		t.Fatalf("describe-images: exit %d %s", code, errOut)
	}
	want := 0
	for _, img := range e.acct.images {
		if strings.HasPrefix(img.Name, strings.TrimSuffix(name, "*")) {
			want++
		}
	}
	t.Logf("describe-images by owner and name: %d of the catalog's %d images", len(images.Images), len(e.acct.images))
	if want == 0 || len(images.Images) != want {
		t.Fatalf("describe-images by name: %d images, the catalog has %d of that name", len(images.Images), want)
	}
	if code, _ := e.awsCLI(&images, "ec2", "describe-images", "--owners", "self", "--filters", "Name=name,Values="+name); code != 0 || len(images.Images) != 0 {
		t.Fatalf("describe-images --owners self: %d images of AWS's account came back", len(images.Images))
	}

	// Paged: the CLI asks for 5 at a time (the least EC2 takes) and follows
	// NextToken to the end.
	if _, err := e.asg.UpdateAutoScalingGroup(t.Context(), &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: aws.String(e.group), MaxSize: aws.Int32(12), DesiredCapacity: aws.Int32(12),
	}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	before := len(e.acct.Calls("DescribeInstances"))
	var instances struct {
		Reservations []struct{ Instances []struct{ InstanceId string } }
	}
	if code, errOut := e.awsCLI(&instances, "ec2", "describe-instances", "--page-size", "5"); code != 0 {
		t.Fatalf("describe-instances: exit %d %s", code, errOut)
	}
	n, calls := len(instances.Reservations), len(e.acct.Calls("DescribeInstances"))-before
	t.Logf("describe-instances --page-size 5: %d instances in %d calls", n, calls)
	if n != 12 || calls != 3 {
		t.Fatalf("describe-instances in pages of 5: %d instances in %d calls; want 12 in 3", n, calls)
	}
	before = len(e.acct.Calls("DescribeScalingActivities"))
	var acts struct {
		Activities []struct{ ActivityId, StatusCode string }
	}
	if code, errOut := e.awsCLI(&acts, "autoscaling", "describe-scaling-activities", "--auto-scaling-group-name", e.group, "--page-size", "4"); code != 0 {
		t.Fatalf("describe-scaling-activities: exit %d %s", code, errOut)
	}
	n, calls = len(acts.Activities), len(e.acct.Calls("DescribeScalingActivities"))-before
	t.Logf("describe-scaling-activities --page-size 4: %d activities in %d calls", n, calls)
	if n != 12 || calls != 3 {
		t.Fatalf("describe-scaling-activities in pages of 4: %d activities in %d calls; want 12 in 3", n, calls)
	}

	var groups struct {
		AutoScalingGroups []struct{ AutoScalingGroupName string }
	}
	if code, _ := e.awsCLI(&groups, "autoscaling", "describe-auto-scaling-groups"); code != 0 || len(groups.AutoScalingGroups) != 1 || groups.AutoScalingGroups[0].AutoScalingGroupName != e.group {
		t.Fatalf("describe-auto-scaling-groups: %+v", groups)
	}
	var param struct{ Parameter struct{ Value string } }
	path := "/aws/service/eks/optimized-ami/1.37/amazon-linux-2023/x86_64/standard/recommended/image_id"
	if code, _ := e.awsCLI(&param, "ssm", "get-parameter", "--name", path); code != 0 || param.Parameter.Value != e.recommended("1.37") {
		t.Fatalf("ssm get-parameter: %+v", param)
	}
	var ng struct {
		Nodegroup struct{ NodegroupName, Status string }
	}
	if code, _ := e.awsCLI(&ng, "eks", "describe-nodegroup", "--cluster-name", "eksworkshop-eksctl", "--nodegroup-name", "nodegroup"); code != 0 || ng.Nodegroup.Status != "ACTIVE" {
		t.Fatalf("eks describe-nodegroup: %+v", ng)
	}
	var quota struct {
		Quota struct {
			QuotaCode string
			Value     float64
		}
	}
	if code, _ := e.awsCLI(&quota, "service-quotas", "get-service-quota", "--service-code", "ec2", "--quota-code", QuotaOnDemandStandard); code != 0 || quota.Quota.Value != 10000 {
		t.Fatalf("service-quotas get-service-quota: %+v", quota)
	}

	// Errors come back with AWS's codes, which the CLI prints.
	for _, c := range []struct {
		args []string
		code string
	}{
		{[]string{"ec2", "describe-images", "--image-ids", "ami-0000000000000000f"}, "InvalidAMIID.NotFound"},
		{[]string{"ec2", "describe-instance-types", "--instance-types", "m5.huge"}, "InvalidInstanceType"},
		{[]string{"autoscaling", "terminate-instance-in-auto-scaling-group", "--instance-id", "i-0000000000000000f", "--should-decrement-desired-capacity"}, "ValidationError"},
		{[]string{"eks", "describe-nodegroup", "--cluster-name", "eksworkshop-eksctl", "--nodegroup-name", "nope"}, "ResourceNotFoundException"},
		{[]string{"ssm", "get-parameter", "--name", "/aws/service/eks/optimized-ami/1.99/nope"}, "ParameterNotFound"},
	} {
		if code, errOut := e.awsCLI(nil, c.args...); code == 0 || !strings.Contains(errOut, c.code) {
			t.Errorf("aws %v: exit %d, stderr %q; want %s", c.args, code, strings.TrimSpace(errOut), c.code)
		}
	}
}
