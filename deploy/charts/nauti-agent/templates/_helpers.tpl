{{/* Labels every object of the release carries. */}}
{{- define "nauti-agent.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nauti
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "<name>"). */}}
{{- define "nauti-agent.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The image of a daemon: (dict "root" $ "name" "<daemon>" "image" <component image values>). */}}
{{- define "nauti-agent.image" -}}
{{- $repo := .image.repository | default (printf "%s/%s" .root.Values.images.prefix .name) -}}
{{- $tag := .image.tag | default .root.Values.images.tag -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* Whether the chart runs OVN central (no existing OVN named). */}}
{{- define "nauti-agent.ovnCentral" -}}
{{- if and (not .Values.ovn.northbound) .Values.ovn.central.enabled -}}true{{- end -}}
{{- end -}}

{{/* The cluster's OVN northbound database, as Nauti's daemons dial it. */}}
{{- define "nauti-agent.ovnNB" -}}
{{- .Values.ovn.northbound | default (printf "tcp:ovn-central.%s.svc:6641" .Release.Namespace) -}}
{{- end -}}

{{/* The Secret holding the bootstrap token and the hub's CA. */}}
{{- define "nauti-agent.hubSecret" -}}
{{- .Values.hub.existingSecret | default "nauti-hub" -}}
{{- end -}}

{{/* The pod security context of Nauti's unprivileged daemons. */}}
{{- define "nauti-agent.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container security context of Nauti's unprivileged daemons. */}}
{{- define "nauti-agent.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Values that contradict each other; the schema checks each value alone. */}}
{{- define "nauti-agent.validate" -}}
{{- if and (not .Values.hub.existingSecret) (not (and .Values.hub.bootstrapToken .Values.hub.caCert)) -}}
{{- fail "nauti-agent: set hub.bootstrapToken and hub.caCert (the hub's install prints how), or hub.existingSecret naming a Secret with the keys token and ca.crt" -}}
{{- end -}}
{{- if and .Values.hub.existingSecret (or .Values.hub.bootstrapToken .Values.hub.caCert) -}}
{{- fail "nauti-agent: hub.existingSecret replaces hub.bootstrapToken and hub.caCert; set one or the other" -}}
{{- end -}}
{{- if ne (empty .Values.ovn.northbound) (empty .Values.ovn.southbound) -}}
{{- fail "nauti-agent: an existing OVN needs both ovn.northbound and ovn.southbound" -}}
{{- end -}}
{{- if and (not .Values.ovn.northbound) (not .Values.ovn.central.enabled) -}}
{{- fail "nauti-agent: with ovn.central.enabled=false, name the existing OVN in ovn.northbound and ovn.southbound" -}}
{{- end -}}
{{- if and .Values.tunnel.public (not .Values.tunnel.endpoint) -}}
{{- fail "nauti-agent: tunnel.public needs tunnel.endpoint, the address other clusters dial" -}}
{{- end -}}
{{- end -}}
