// uploadsession on Azure: one resource group holding a Flex Consumption Python function app, its
// user-assigned managed identity, one storage account (host storage, deployment package, the app's
// tables and documents; shared keys off) and Log Analytics + Application Insights (local auth off).
// `azd up` deploys it with infra/main.parameters.json; docs/deploy.md walks through it.
targetScope = 'subscription'

@description('azd environment name: names the resource group, seeds every resource name, tags all.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Region for every resource; it must offer the Flex Consumption plan.')
@minLength(1)
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

// ---- The app's settings (DESIGN.md §5); defaults equal uploadsession/config.py's. ----

@description('AUTH_AUDIENCES: comma-separated accepted token audiences. Take the authAudiences output of app-registration.bicep (the API app\'s client id and identifier URI).')
@minLength(1)
param authAudiences string

@description('AUTH_JWKS_URI: where token signing keys come from. Empty: the common Entra ID keys of this cloud.')
param authJwksUri string = ''

@description('AUTH_V1_ISSUER_HOST: the issuer host of v1 tokens in this cloud (https://sts.windows.net in the public and US Government clouds, https://sts.chinacloudapi.cn in Azure China).')
param authV1IssuerHost string = 'https://sts.windows.net'

@description('AUTH_CLOCK_SKEW_SECONDS: leeway for exp and nbf.')
@minValue(0)
param authClockSkewSeconds int = 300

@description('UPLOAD_SESSION_TTL_SECONDS: sliding expiry of an upload session.')
@minValue(1)
param uploadSessionTtlSeconds int = 86400

@description('MAX_DOCUMENT_BYTES: largest document a session accepts.')
@minValue(1)
param maxDocumentBytes int = 1073741824

@description('MAX_SEGMENT_BYTES: largest segment one upload request carries (the app refuses more than 100 MiB).')
@minValue(1)
@maxValue(104857600)
param maxSegmentBytes int = 10485760

@description('PURGE_SCHEDULE: NCRONTAB schedule (with seconds) of the timer that purges expired sessions.')
@minLength(1)
param purgeSchedule string = '0 */5 * * * *'

// ---- Flex Consumption scale. ----

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Concurrent HTTP requests one instance serves before another is added.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16

// ---- Network, resilience, retention, browsers. ----

@description('Network isolation: VNet integration of the app, private endpoints and private DNS for blob and table, storage public network access off. Provision and activation (the postprovision hook, the CLI) then need a machine inside the network, docs/deploy.md.')
param vnetEnabled bool = false

@description('Zone redundancy: ZRS storage and a zone-redundant Flex Consumption plan (the region must offer both).')
param zoneRedundant bool = false

@description('DOCUMENT_RETENTION_DAYS: days a committed document is kept before the storage lifecycle rule deletes it.')
@minValue(1)
param documentRetentionDays int = 7

@description('CORS_ALLOWED_ORIGINS: comma-separated origins browsers may call the API from; empty: none.')
param corsAllowedOrigins string = ''

// ---- Access for whoever deploys. ----

@description('Object id of a developer (azd sets AZURE_PRINCIPAL_ID to the signed-in one) or a CI service principal that gets Table and Blob Data Contributor, so `uploadsession subscription activate` works with their own login. Empty: no such grant.')
param principalId string = ''

@description('Kind of principalId: User, or ServicePrincipal when CI deploys.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

// One source of truth each: the runtime is the Python version the project pins, and the base URL
// carries the route prefix host.json gives the HTTP functions. With an empty prefix the routes
// carry the version segment themselves (/v1.0 and /beta, as Microsoft Graph): the base URL then
// names /beta.
var pythonVersion = trim(loadTextContent('../.python-version'))
var routePrefix = loadJsonContent('../host.json').extensions.http.routePrefix
var apiVersionSegment = empty(routePrefix) ? 'beta' : routePrefix

var functionAppName = '${abbrs.functionApp}${resourceToken}'
// 'https://a.example, https://b.example' → ['https://a.example', 'https://b.example']; '' → [].
var corsOrigins = empty(trim(corsAllowedOrigins)) ? [] : split(replace(corsAllowedOrigins, ' ', ''), ',')
var defaultJwksUri = '${environment().authentication.loginEndpoint}common/discovery/v2.0/keys'
// The v2 token issuer is {loginEndpoint}{tid}/v2.0 in every cloud (loginEndpoint ends in '/').
var authorityHost = take(environment().authentication.loginEndpoint, length(environment().authentication.loginEndpoint) - 1)

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: '${abbrs.resourceGroup}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentity}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageAccount}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
    vnetEnabled: vnetEnabled
    zoneRedundant: zoneRedundant
    documentRetentionDays: documentRetentionDays
  }
}

module network 'modules/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    name: '${abbrs.virtualNetwork}${resourceToken}'
    location: location
    tags: tags
    networkSecurityGroupPrefix: '${abbrs.networkSecurityGroup}${resourceToken}-'
    privateEndpointPrefix: '${abbrs.privateEndpoint}${resourceToken}-'
    storageAccountId: storage.outputs.id
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.logAnalyticsWorkspace}${resourceToken}'
    applicationInsightsName: '${abbrs.applicationInsights}${resourceToken}'
    location: location
    tags: tags
  }
}

module roles 'modules/role-assignments.bicep' = {
  name: 'role-assignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    identityPrincipalId: identity.outputs.principalId
    principalId: principalId
    principalType: principalType
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.appServicePlan}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    pythonVersion: pythonVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    subnetId: vnetEnabled ? network!.outputs.appSubnetId : ''
    zoneRedundant: zoneRedundant
    corsAllowedOrigins: corsOrigins
    // Every setting uploadsession/config.py reads. Storage is the identity-based form
    // (UPLOADSESSION_STORAGE__*), never the UPLOADSESSION_STORAGE connection string: there are no keys.
    appSettings: {
      UPLOADSESSION_STORAGE__tableServiceUri: storage.outputs.tableEndpoint
      UPLOADSESSION_STORAGE__blobServiceUri: storage.outputs.blobEndpoint
      UPLOADSESSION_STORAGE__clientId: identity.outputs.clientId
      AZURE_CLIENT_ID: identity.outputs.clientId
      AUTH_AUDIENCES: authAudiences
      AUTH_JWKS_URI: empty(authJwksUri) ? defaultJwksUri : authJwksUri
      AUTH_AUTHORITY_HOST: authorityHost
      AUTH_V1_ISSUER_HOST: authV1IssuerHost
      AUTH_CLOCK_SKEW_SECONDS: string(authClockSkewSeconds)
      UPLOAD_SESSION_TTL_SECONDS: string(uploadSessionTtlSeconds)
      MAX_DOCUMENT_BYTES: string(maxDocumentBytes)
      MAX_SEGMENT_BYTES: string(maxSegmentBytes)
      PURGE_SCHEDULE: purgeSchedule
      // The Python worker exports its OpenTelemetry data in the host's trace (telemetryMode).
      PYTHON_ENABLE_OPENTELEMETRY: 'true'
    }
  }
  // The host starts using storage as soon as the app exists; let the grants come first. (With
  // vnetEnabled, subnetId already makes the app wait for the network module, private endpoints
  // and DNS included.)
  dependsOn: [
    roles
  ]
}

// ---- Outputs: azd stores each in the environment (.azure/<env>/.env), hooks and scripts read them. ----

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name

@description('The function app; azd deploys the api service to it.')
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name

@description('https://<host>: the app\'s root.')
output API_HOST_URL string = 'https://${functionApp.outputs.defaultHostName}'

@description('https://<host>/beta: the API root as clients use it, like https://graph.microsoft.com/beta.')
output API_BASE_URL string = 'https://${functionApp.outputs.defaultHostName}/${apiVersionSegment}'

output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint

@description('Client id of the app\'s user-assigned managed identity.')
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId

output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_LOG_ANALYTICS_NAME string = monitoring.outputs.logAnalyticsName
