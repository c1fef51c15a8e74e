{{/* ---- names and labels ---------------------------------------------------------- */}}

{{- define "mcp-tunnel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mcp-tunnel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mcp-tunnel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every object. */}}
{{- define "mcp-tunnel.labels" -}}
helm.sh/chart: {{ include "mcp-tunnel.chart" . }}
app.kubernetes.io/name: {{ include "mcp-tunnel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the gateway pods: common labels plus the component. */}}
{{- define "mcp-tunnel.podLabels" -}}
{{ include "mcp-tunnel.labels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* Selector labels of the gateway pods. */}}
{{- define "mcp-tunnel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-tunnel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* Selector labels of the certificate renewal job's pods. */}}
{{- define "mcp-tunnel.renewSelectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-tunnel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: cert-renew
{{- end }}

{{- define "mcp-tunnel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mcp-tunnel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mcp-tunnel.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "mcp-tunnel.configMapName" -}}
{{- printf "%s-config" (include "mcp-tunnel.fullname" .) }}
{{- end }}

{{- define "mcp-tunnel.upstreamCAConfigMapName" -}}
{{- printf "%s-upstream-ca" (include "mcp-tunnel.fullname" .) }}
{{- end }}

{{- define "mcp-tunnel.certsSecretName" -}}
{{- default (printf "%s-certs" (include "mcp-tunnel.fullname" .)) .Values.certs.existingSecret }}
{{- end }}

{{- define "mcp-tunnel.innerCASecretName" -}}
{{- default (printf "%s-inner-ca" (include "mcp-tunnel.fullname" .)) .Values.certRenew.ca.existingSecret }}
{{- end }}

{{- define "mcp-tunnel.innerClaimName" -}}
{{- default (printf "%s-inner-tls" (include "mcp-tunnel.fullname" .)) .Values.certRenew.persistence.existingClaim }}
{{- end }}

{{/* ---- derived settings ----------------------------------------------------------- */}}

{{/* Port of config.edge.address (7844 when it names none), or networkPolicy.edge.port. */}}
{{- define "mcp-tunnel.edgePort" -}}
{{- if .Values.networkPolicy.edge.port }}
{{- .Values.networkPolicy.edge.port }}
{{- else }}
{{- $m := regexFind ":[0-9]+$" .Values.config.edge.address }}
{{- if and $m (not (hasSuffix "]" .Values.config.edge.address)) }}
{{- trimPrefix ":" $m }}
{{- else }}
{{- 7844 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Address the exec probes dial: admin.listen with a wildcard host made loopback. */}}
{{- define "mcp-tunnel.probeAddress" -}}
{{- $l := .Values.config.admin.listen }}
{{- if hasPrefix "0.0.0.0:" $l }}
{{- printf "127.0.0.1:%s" (trimPrefix "0.0.0.0:" $l) }}
{{- else if hasPrefix "[::]:" $l }}
{{- printf "[::1]:%s" (trimPrefix "[::]:" $l) }}
{{- else }}
{{- $l }}
{{- end }}
{{- end }}

{{- define "mcp-tunnel.terminationGracePeriodSeconds" -}}
{{- add .Values.config.shutdownTimeoutSeconds .Values.terminationGraceExtraSeconds }}
{{- end }}

{{/* Fails rendering with a clear message when required values are missing. */}}
{{- define "mcp-tunnel.validate" -}}
{{- $_ := required "config.tunnelDomain is required (e.g. mcp.acme.example)" .Values.config.tunnelDomain }}
{{- $_ = required "config.edge.address is required (e.g. edge.example.com:7844)" .Values.config.edge.address }}
{{- if not .Values.config.routes }}
{{- fail "config.routes is empty: add at least one route (host + upstream)" }}
{{- end }}
{{- range $i, $r := .Values.config.routes }}
{{- if and (ne $.Values.mode "sidecar") (not $r.upstream) }}
{{- fail (printf "config.routes[%d].upstream is required in standalone mode" $i) }}
{{- end }}
{{- if and $r.ca (not (hasPrefix "/" $r.ca)) (not (hasKey $.Values.upstreamCAs $r.ca)) }}
{{- fail (printf "config.routes[%d].ca %q is neither a key of upstreamCAs nor an absolute path" $i $r.ca) }}
{{- end }}
{{- end }}
{{- if not .Values.certs.existingSecret }}
{{- $_ = required "certs.edgeCa is required (--set-file certs.edgeCa=certs/edge/ca.pem) unless certs.existingSecret is set" .Values.certs.edgeCa }}
{{- $_ = required "certs.gatewayCert is required (--set-file certs.gatewayCert=certs/tunnel/gateway.pem) unless certs.existingSecret is set" .Values.certs.gatewayCert }}
{{- $_ = required "certs.gatewayKey is required (--set-file certs.gatewayKey=certs/tunnel/gateway.key) unless certs.existingSecret is set" .Values.certs.gatewayKey }}
{{- if not .Values.certRenew.enabled }}
{{- $_ = required "certs.innerCert is required (--set-file certs.innerCert=certs/inner/server.pem) unless certs.existingSecret is set" .Values.certs.innerCert }}
{{- $_ = required "certs.innerKey is required (--set-file certs.innerKey=certs/inner/server.key) unless certs.existingSecret is set" .Values.certs.innerKey }}
{{- end }}
{{- end }}
{{- if and .Values.certRenew.enabled (not .Values.certRenew.ca.existingSecret) }}
{{- $_ = required "certRenew.ca.caCert is required when certRenew.enabled (or set certRenew.ca.existingSecret)" .Values.certRenew.ca.caCert }}
{{- $_ = required "certRenew.ca.caKey is required when certRenew.enabled (or set certRenew.ca.existingSecret)" .Values.certRenew.ca.caKey }}
{{- end }}
{{- end }}

{{/* ---- gateway.toml ---------------------------------------------------------------- */}}

{{/* Strings are emitted with toJson: a JSON string is a valid TOML basic string. */}}
{{- define "mcp-tunnel.gatewayToml" -}}
{{- $c := .Values.config -}}
{{- $certDir := "/etc/mcp-tunnel/certs" -}}
# gateway.toml rendered by the mcp-tunnel Helm chart ({{ include "mcp-tunnel.chart" . }}).
# Change it through the chart's values, not here. Keys: examples/gateway.toml.
tunnel_domain = {{ $c.tunnelDomain | toJson }}
shutdown_timeout = "{{ $c.shutdownTimeoutSeconds }}s"
{{- if $c.idleTimeout }}
idle_timeout = {{ $c.idleTimeout | toJson }}
{{- end }}
{{- if .Values.stateDir.enabled }}
state_dir = {{ .Values.stateDir.path | toJson }}
{{- end }}

[edge]
address = {{ $c.edge.address | toJson }}
{{- if $c.edge.serverName }}
server_name = {{ $c.edge.serverName | toJson }}
{{- end }}
ca = "{{ $certDir }}/edge/ca.pem"
cert = "{{ $certDir }}/tunnel/gateway.pem"
key = "{{ $certDir }}/tunnel/gateway.key"

[inner_tls]
{{- if .Values.certRenew.enabled }}
# On the renewal volume, kept current by the certs-renew CronJob.
cert = {{ printf "%s/server.pem" .Values.certRenew.dir | toJson }}
key = {{ printf "%s/server.key" .Values.certRenew.dir | toJson }}
{{- else }}
cert = "{{ $certDir }}/inner/server.pem"
key = "{{ $certDir }}/inner/server.key"
{{- end }}

[upstream]
{{- if $c.upstream.allowedNetworks }}
allowed_networks = {{ $c.upstream.allowedNetworks | toJson }}
{{- end }}
connect_timeout = {{ $c.upstream.connectTimeout | toJson }}
timeout = {{ $c.upstream.timeout | toJson }}

[admin]
# Loopback only: probed from inside the container by `mcp-tunnel probe`.
listen = {{ $c.admin.listen | toJson }}

[audit]
sink = {{ $c.audit.sink | toJson }}
{{- if eq $c.audit.sink "file" }}
{{- if not .Values.stateDir.enabled }}
{{- fail "config.audit.sink \"file\" writes to the stateDir volume: set stateDir.enabled" }}
{{- end }}
path = {{ printf "%s/%s" .Values.stateDir.path $c.audit.file | toJson }}
{{- end }}
{{- range $c.routes }}

[[routes]]
host = {{ .host | toJson }}
upstream = {{ default (printf "http://127.0.0.1:%v" $.Values.sidecar.upstreamPort) .upstream | toJson }}
{{- if .pathPrefix }}
path_prefix = {{ .pathPrefix | toJson }}
{{- end }}
{{- if .stripPrefix }}
strip_prefix = true
{{- end }}
{{- if .ca }}
ca = {{ (ternary .ca (printf "%s/upstream/%s" $certDir .ca) (hasPrefix "/" .ca)) | toJson }}
{{- end }}
{{- if .preserveHost }}
preserve_host = true
{{- end }}
{{- if .timeout }}
timeout = {{ .timeout | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---- pod pieces shared by the Deployment and the sidecar snippet ------------------ */}}

{{- define "mcp-tunnel.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mcp-tunnel.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The gateway container (a list item). */}}
{{- define "mcp-tunnel.container" -}}
- name: mcp-tunnel
  image: {{ include "mcp-tunnel.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - /mcp-tunnel
  args:
    - --log-level
    - {{ .Values.logLevel | quote }}
    - --log-format
    - {{ .Values.logFormat | quote }}
    - gateway
    - --config
    - /etc/mcp-tunnel/gateway.toml
  startupProbe:
    exec:
      command:
        - /mcp-tunnel
        - probe
        - --admin
        - {{ include "mcp-tunnel.probeAddress" . | quote }}
        - live
    {{- toYaml .Values.probes.startup | nindent 4 }}
  livenessProbe:
    exec:
      command:
        - /mcp-tunnel
        - probe
        - --admin
        - {{ include "mcp-tunnel.probeAddress" . | quote }}
        - live
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    exec:
      command:
        - /mcp-tunnel
        - probe
        - --admin
        - {{ include "mcp-tunnel.probeAddress" . | quote }}
        - ready
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  securityContext:
    {{- include "mcp-tunnel.containerSecurityContext" . | nindent 4 }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: mcp-tunnel-config
      mountPath: /etc/mcp-tunnel
      readOnly: true
    {{- if .Values.certRenew.enabled }}
    - name: mcp-tunnel-inner-tls
      mountPath: {{ .Values.certRenew.dir }}
      readOnly: true
    {{- end }}
    {{- if .Values.stateDir.enabled }}
    - name: mcp-tunnel-state
      mountPath: {{ .Values.stateDir.path }}
    {{- end }}
{{- end }}

{{/*
The gateway's volumes (list items): one projected volume at /etc/mcp-tunnel holding
gateway.toml and certs/..., laid out like `mcp-tunnel certs init` output, plus the
renewal PVC. `mode` is the file mode as a decimal number.
*/}}
{{- define "mcp-tunnel.volumes" -}}
{{- $mode := 288 }}{{- /* 0440 */}}
{{- if and (eq .Values.mode "sidecar") (kindIs "invalid" .Values.sidecar.fsGroup) }}
{{- $mode = 292 }}{{- /* 0444: no fsGroup, so the files must be world-readable */}}
{{- end }}
{{- $k := .Values.certs.keys -}}
- name: mcp-tunnel-config
  projected:
    defaultMode: {{ $mode }}
    sources:
      - configMap:
          name: {{ include "mcp-tunnel.configMapName" . }}
          items:
            - key: gateway.toml
              path: gateway.toml
      - secret:
          name: {{ include "mcp-tunnel.certsSecretName" . }}
          items:
            - key: {{ $k.edgeCa | quote }}
              path: certs/edge/ca.pem
            - key: {{ $k.gatewayCert | quote }}
              path: certs/tunnel/gateway.pem
            - key: {{ $k.gatewayKey | quote }}
              path: certs/tunnel/gateway.key
            {{- if not .Values.certRenew.enabled }}
            - key: {{ $k.innerCert | quote }}
              path: certs/inner/server.pem
            - key: {{ $k.innerKey | quote }}
              path: certs/inner/server.key
            {{- end }}
      {{- if .Values.upstreamCAs }}
      - configMap:
          name: {{ include "mcp-tunnel.upstreamCAConfigMapName" . }}
          items:
            {{- range $name, $_ := .Values.upstreamCAs }}
            - key: {{ $name | quote }}
              path: {{ printf "certs/upstream/%s" $name | quote }}
            {{- end }}
      {{- end }}
{{- if .Values.certRenew.enabled }}
- name: mcp-tunnel-inner-tls
  persistentVolumeClaim:
    claimName: {{ include "mcp-tunnel.innerClaimName" . }}
    readOnly: true
{{- end }}
{{- if .Values.stateDir.enabled }}
- name: mcp-tunnel-state
  {{- if .Values.stateDir.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.stateDir.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.stateDir.sizeLimit }}
  {{- end }}
{{- end }}
{{- end }}

{{/* sha256 of everything the gateway reads at start, for the pod-template annotation. */}}
{{- define "mcp-tunnel.configChecksum" -}}
{{- include "mcp-tunnel.gatewayToml" . | sha256sum }}
{{- end }}

{{/* Checksum of chart-managed certificate material ("" with existingSecret). */}}
{{- define "mcp-tunnel.certsChecksum" -}}
{{- if not .Values.certs.existingSecret }}
{{- $c := .Values.certs }}
{{- list $c.edgeCa $c.gatewayCert $c.gatewayKey $c.innerCert $c.innerKey (toJson .Values.upstreamCAs) | join "\n" | sha256sum }}
{{- else }}
{{- toJson .Values.upstreamCAs | sha256sum }}
{{- end }}
{{- end }}

{{/*
Sidecar mode: a strategic-merge patch for the Deployment/StatefulSet of an existing MCP
server. Containers and volumes merge by name, so it can be applied as is:
  kubectl patch deployment NAME --patch-file snippet.yaml
*/}}
{{- define "mcp-tunnel.sidecarSnippet" -}}
# mcp-tunnel sidecar for release {{ .Release.Name }} (namespace {{ .Release.Namespace }}).
# Add to the pod template of your MCP server (same namespace), e.g.
#   kubectl -n {{ .Release.Namespace }} patch deployment MY-MCP-SERVER --patch-file snippet.yaml
# Routes without `upstream` reach the server at http://127.0.0.1:{{ .Values.sidecar.upstreamPort }}.
spec:
  template:
    metadata:
      annotations:
        # Update together with the chart so the pod restarts when the config changes.
        checksum/mcp-tunnel-config: {{ include "mcp-tunnel.configChecksum" . }}
        checksum/mcp-tunnel-certs: {{ include "mcp-tunnel.certsChecksum" . }}
    spec:
      # At least shutdown_timeout ({{ .Values.config.shutdownTimeoutSeconds }}s) + {{ .Values.terminationGraceExtraSeconds }}s, so a draining gateway is not SIGKILLed.
      terminationGracePeriodSeconds: {{ include "mcp-tunnel.terminationGracePeriodSeconds" . }}
      {{- if not (kindIs "invalid" .Values.sidecar.fsGroup) }}
      securityContext:
        # Lets UID 65532 read the 0440 certificate files (applies to all of the pod's volumes).
        fsGroup: {{ .Values.sidecar.fsGroup }}
      {{- end }}
      containers:
        {{- include "mcp-tunnel.container" . | nindent 8 }}
      volumes:
        {{- include "mcp-tunnel.volumes" . | nindent 8 }}
{{- end }}
