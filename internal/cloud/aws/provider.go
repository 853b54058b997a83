package aws

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"

	"github.com/noderoll/noderoll/internal/cloud"
)

// Options configure how the provider reaches AWS. Empty fields fall back to
// the SDK's usual chain (environment, shared config, instance role).
type Options struct {
	// Log receives the SDK's own log lines (retries, connection notes) at
	// debug level; nil discards them.
	Log             *slog.Logger
	Region          string
	Profile         string
	Endpoint        string // overrides every service's endpoint (the sandbox's)
	AccessKeyID     string // static credentials, for the sandbox
	SecretAccessKey string
	// RoleARN is a role to assume (another account's, typically) with the
	// credentials found; ExternalID is what its trust policy may demand.
	RoleARN, ExternalID string
	// OnCall hears of every AWS call once it ended (its retries included):
	// the service, the operation and its error (nil: it succeeded).
	OnCall func(service, operation string, err error)
}

// Provider talks to AWS through aws-sdk-go-v2.
type Provider struct {
	asg autoscalingAPI
	ec2 ec2API
	ssm ssmAPI
	eks eksAPI
	// quotas reads EC2's vCPU quotas; nil: not checked.
	quotas servicequotasAPI
	// known holds what never changes of an instance once EC2 has said it
	// (its image, node name, launch time): a group is read on every poll,
	// and describing all its instances each time was, at 375 instances,
	// most of the upgrade's AWS calls' CPU.
	known instanceCache
}

var (
	_ cloud.Provider       = (*Provider)(nil)
	_ cloud.ManagedUpdater = (*Provider)(nil)
)

// New loads the SDK configuration and builds the service clients.
func New(ctx context.Context, o Options) (*Provider, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	if o.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	// Throttling and transient faults are retried by the SDK with backoff;
	// adaptive mode also slows the client down while AWS throttles it, so
	// a large group's many describe calls back off together.
	opts = append(opts, config.WithRetryMaxAttempts(8), config.WithRetryMode(aws.RetryModeAdaptive))
	// The SDK's warnings are about connection reuse, not the outcome of a
	// call: keep them out of the user's view unless asked for.
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts = append(opts, config.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		log.Debug(fmt.Sprintf(format, v...), "source", "aws-sdk", "class", string(c))
	})))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if o.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(o.Endpoint)
	}
	if o.OnCall != nil {
		cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
			// At initialize: once a call, around its retries.
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("NoderollOnCall", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				o.OnCall(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), err)
				return out, md, err
			}), middleware.After)
		})
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("no AWS region: pass --region or set AWS_REGION")
	}
	if o.RoleARN != "" {
		// Every call runs as the role, its credentials renewed before they
		// expire; the first call fails with STS's own words when the role
		// cannot be assumed (a wrong external id, a trust policy).
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), o.RoleARN, func(ar *stscreds.AssumeRoleOptions) {
			ar.RoleSessionName = "noderoll"
			if o.ExternalID != "" {
				ar.ExternalID = aws.String(o.ExternalID)
			}
		}))
	}
	p := NewFromClients(autoscaling.NewFromConfig(cfg), ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg), eks.NewFromConfig(cfg))
	p.quotas = servicequotas.NewFromConfig(cfg)
	return p, nil
}

// NewFromClients builds a provider over given SDK clients.
func NewFromClients(a autoscalingAPI, e ec2API, s ssmAPI, k eksAPI) *Provider {
	return &Provider{asg: a, ec2: e, ssm: s, eks: k}
}

// Cluster implements cloud.Provider.
func (p *Provider) Cluster(ctx context.Context, name string) (cloud.Cluster, error) {
	out, err := p.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(name)})
	if isNotFound(err) {
		return cloud.Cluster{}, cloud.NotFoundf(err, "EKS cluster %q", name)
	}
	if err != nil {
		return cloud.Cluster{}, fmt.Errorf("describing EKS cluster %s: %w", name, err)
	}
	return cloud.Cluster{Name: name, Version: aws.ToString(out.Cluster.Version)}, nil
}

func tag(tags []astypes.TagDescription, key string) (string, bool) {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value), true
		}
	}
	return "", false
}
