# Portcullis policy for OPA (Rego v1: OPA 1.x, and OPA 0.59+ thanks to `import rego.v1`).
# The same rules as the demo's embedded policy (DEMO_POLICY in src/cli/demo.ts):
#   subjects spiffe://example.org/ns/prod/sa/support-* may orders.refund on order:*,
#   and a "high" route also demands a grant, posture tier high and a grant of at most 15m.
#
# Portcullis POSTs {"input": {subject, action, resource, context}} (SPEC "Remote PDPs"):
#   input.subject.id                         peer SPIFFE ID (mTLS-verified)
#   input.subject.properties.posture_tier    low | medium | high (verified posture, if sent)
#   input.action.name                        the route's action, e.g. orders.refund
#   input.resource.id                        e.g. order:42; .type = order
#   input.resource.properties.sensitivity    low | medium | high | critical
#   input.context.grant                      verified grant claims (never the token)
#   input.context.intent                     the x-intent header, if sent
# Portcullis has already verified the tokens (signature, aud, exp, sub = peer, scope and
# resources cover the request, not revoked): this policy decides only what the tiers and rules say.
#
#   pdp: { kind: opa, url: http://127.0.0.1:8181/v1/data/portcullis/allow }      -> boolean
#   pdp: { kind: opa, url: http://127.0.0.1:8181/v1/data/portcullis/decision }   -> {allow, reason, ttl}
package portcullis

import rego.v1

# What each sensitivity demands on top of an allow rule (the embedded policy's `tiers`).
tiers := {
	"high": {"grant": true, "posture": "high", "intent": false, "max_grant_ttl": 900},
	"critical": {"grant": true, "posture": "high", "intent": true, "max_grant_ttl": 300},
}

posture_rank := {"low": 1, "medium": 2, "high": 3}

# The embedded policy's `rules` (allow rules only; add deny rules to `denied_by_rule`).
rules := [{
	"id": "support-refunds",
	# SPIFFE pattern spiffe://example.org/ns/prod/sa/support-*: `*` stays within one segment.
	"subject": `^spiffe://example\.org/ns/prod/sa/support-[^/]*$`,
	"actions": {"orders.refund"},
	# Resource pattern order:*: `*` stays within one colon-separated part.
	"resource": `^order:[^:]+$`,
	"ttl": 30,
}]

default allow := false

allow if {
	matched_rule
	count(tier_problems) == 0
	not denied_by_rule
}

# Deny rules win over allow rules; none in the example.
denied_by_rule if false

# The first allow rule that matches, as in the embedded PDP.
matching_rules := [rule |
	some rule in rules
	regex.match(rule.subject, input.subject.id)
	input.action.name in rule.actions
	regex.match(rule.resource, input.resource.id)
]

matched_rule := matching_rules[0]

tier := tiers[input.resource.properties.sensitivity]

tier_problems contains "grant_required" if {
	tier.grant
	not input.context.grant
}

tier_problems contains "grant_ttl_too_long" if {
	grant := input.context.grant
	grant.exp - grant.iat > tier.max_grant_ttl
}

tier_problems contains "posture_required" if {
	tier.posture
	not input.subject.properties.posture_tier
}

tier_problems contains "posture_insufficient" if {
	have := posture_rank[input.subject.properties.posture_tier]
	have < posture_rank[tier.posture]
}

tier_problems contains "intent_required" if {
	tier.intent
	not input.context.intent
}

# The richer answer: Portcullis caps its cache TTL with `ttl` (seconds) and writes `reason` to
# the audit log; the client always sees policy_denied.
decision := {"allow": true, "reason": sprintf("allow rule %s", [matched_rule.id]), "ttl": matched_rule.ttl} if allow

decision := {"allow": false, "reason": reason} if {
	not allow
	reason := deny_reason
}

deny_reason := "deny rule matched" if denied_by_rule

deny_reason := "no allow rule matched" if {
	not denied_by_rule
	not matched_rule
}

deny_reason := concat(", ", sort(tier_problems)) if {
	not denied_by_rule
	matched_rule
	count(tier_problems) > 0
}
