package membership

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	causewayv1alpha1 "github.com/causeway-mesh/causeway/apis/causeway/v1alpha1"
)

// Token lifetimes. A year keeps members working through long hub outages
// and rare re-joins; re-running join renews a token that is within a month
// of expiring, and Unjoin revokes it at once by deleting its ServiceAccount.
const (
	tokenValidity    = 365 * 24 * time.Hour
	tokenRenewBefore = 30 * 24 * time.Hour
)

// Names inside the agent's kubeconfig.
const (
	kubeconfigCluster = "causeway-hub"
	kubeconfigUser    = "causeway-agent"
)

// agentKubeconfig returns the kubeconfig the member's agent uses for the
// hub. It keeps the token of the member's current kubeconfig while the hub
// still accepts it for the member's ServiceAccount and it is not about to
// expire, so that a repeated join leaves the Secret untouched; otherwise it
// requests a new token.
func agentKubeconfig(ctx context.Context, hub client.Client, p *joinPlan, clk clock.PassiveClock) ([]byte, error) {
	ns := causewayv1alpha1.MemberNamespace(p.opts.Name)
	token := tokenOf(p.existingKubeconfig)
	if token != "" {
		ok, err := tokenStillGood(ctx, hub, token, "system:serviceaccount:"+ns+":"+causewayv1alpha1.AgentServiceAccount, clk.Now())
		if err != nil {
			return nil, err
		}
		if !ok {
			token = ""
		}
	}
	if token == "" {
		var err error
		if token, err = requestToken(ctx, hub, ns); err != nil {
			return nil, err
		}
	}
	return renderKubeconfig(p, token)
}

// tokenOf returns the token of the current user of a kubeconfig, or "".
func tokenOf(kubeconfig []byte) string {
	if len(kubeconfig) == 0 {
		return ""
	}
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return "" // unreadable credentials are replaced
	}
	kctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return ""
	}
	if user, ok := cfg.AuthInfos[kctx.AuthInfo]; ok {
		return user.Token
	}
	return ""
}

// tokenStillGood asks the hub (TokenReview) whether token authenticates as
// wantUser, and checks that it is not about to expire.
func tokenStillGood(ctx context.Context, hub client.Client, token, wantUser string, now time.Time) (bool, error) {
	if exp, ok := tokenExpiry(token); ok && exp.Sub(now) < tokenRenewBefore {
		return false, nil
	}
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}
	if err := hub.Create(ctx, review); err != nil {
		return false, fmt.Errorf("review the member's current hub token: %w", err)
	}
	return review.Status.Authenticated && review.Status.User.Username == wantUser, nil
}

// tokenExpiry reads the exp claim of a JWT without verifying it (the hub
// verifies the token; this only decides when to renew it).
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(claims.Exp, 0), true
}

// requestToken issues a token for the agent's ServiceAccount in ns with the
// TokenRequest API. The token is bound to the ServiceAccount's UID, so it
// dies with it.
func requestToken(ctx context.Context, hub client.Client, ns string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: causewayv1alpha1.AgentServiceAccount}}
	seconds := int64(tokenValidity / time.Second)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}}
	if err := hub.SubResource("token").Create(ctx, sa, req); err != nil {
		return "", fmt.Errorf("request a token for ServiceAccount %s/%s: %w", ns, sa.Name, err)
	}
	if req.Status.Token == "" {
		return "", fmt.Errorf("request a token for ServiceAccount %s/%s: the hub returned an empty token", ns, sa.Name)
	}
	return req.Status.Token, nil
}

// renderKubeconfig returns the agent's kubeconfig: the hub as seen from the
// member, its CA, the token, and the member's hub namespace as default.
func renderKubeconfig(p *joinPlan, token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = p.hubServer
	cluster.CertificateAuthorityData = p.caData
	cluster.TLSServerName = p.opts.Hub.ServerName
	cluster.InsecureSkipTLSVerify = p.opts.Hub.Insecure
	cfg.Clusters[kubeconfigCluster] = cluster
	user := clientcmdapi.NewAuthInfo()
	user.Token = token
	cfg.AuthInfos[kubeconfigUser] = user
	kctx := clientcmdapi.NewContext()
	kctx.Cluster, kctx.AuthInfo = kubeconfigCluster, kubeconfigUser
	kctx.Namespace = causewayv1alpha1.MemberNamespace(p.opts.Name)
	cfg.Contexts[kubeconfigCluster] = kctx
	cfg.CurrentContext = kubeconfigCluster
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("render the agent's kubeconfig: %w", err)
	}
	return b, nil
}
