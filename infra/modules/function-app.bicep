// The Flex Consumption (FC1) Linux plan and the Python function app on it. The app runs as the
// user-assigned identity: for its host storage, its deployment package, its telemetry, and (through
// AZURE_CLIENT_ID and the app settings main.bicep passes in) its own data.

@description('Name of the function app; also its default host name.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app; it must offer Flex Consumption.')
param location string

@description('Tags for both; the app also gets azd-service-name.')
param tags object

@description('azd service name (azure.yaml) that deploys to this app.')
param serviceName string

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Storage account for host storage and the deployment package.')
param storageAccountName string

@description('Blob container in that account holding the deployment package.')
param deploymentContainerName string

@description('Application Insights component receiving the app\'s telemetry.')
param applicationInsightsName string

@description('Python version of the Functions runtime.')
@allowed([
  '3.10'
  '3.11'
  '3.12'
])
param pythonVersion string

@description('Most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Concurrent HTTP requests one instance serves before the platform adds another.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('The app\'s own settings (DESIGN.md §5), merged with the platform settings below.')
param appSettings object

@description('Subnet the app integrates with (network.bicep, delegated to Microsoft.App/environments); empty: no VNet integration.')
param subnetId string = ''

@description('Spread the plan\'s instances over availability zones (the region must support it for Flex Consumption).')
param zoneRedundant bool = false

@description('Origins browsers may call the API from (CORS); empty: none, the default (SDKs and servers need no CORS).')
param corsAllowedOrigins array = []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Settings the Functions platform reads. AzureWebJobsStorage has no connection string: the host
// reaches its storage through the identity (blob: keys, leases, timer status; table: diagnostic
// events), and Application Insights accepts only Entra ID-authenticated telemetry.
var platformSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy is the zoneRedundant parameter (main.bicep), off by default: not every Flex Consumption region offers it, and it keeps at least two always-ready instances billed
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: a public API by design (Universal Print clients call it from anywhere, as they call Graph); every request needs a validated Entra ID token
  // checkov:skip=CKV_AZURE_17: clients authenticate with bearer tokens (the Graph protocol and SDKs); client certificates would lock every SDK out
  // checkov:skip=CKV_AZURE_212: Flex Consumption has no fixed instance count; the platform scales out on demand (zoneRedundant spreads instances over zones)
  // checkov:skip=CKV_AZURE_213: Flex Consumption does not support the platform health check; GET /health exists and the deployment smoke test calls it
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Outbound traffic (storage included) leaves through the subnet when there is one.
    virtualNetworkSubnetId: empty(subnetId) ? null : subnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      cors: {
        allowedOrigins: corsAllowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

resource siteAppSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // This is the `appsettings` config (environment variables), which checkov takes for the `web`
  // site configuration; each skip names what actually holds:
  // checkov:skip=CKV_AZURE_66: not a web config; failed request tracing is IIS (Windows) only, and requests are traced in Application Insights
  // checkov:skip=CKV_AZURE_63: not a web config; HTTP logging is App Service file-system logging, which Flex Consumption lacks: requests are logged to Application Insights
  // checkov:skip=CKV_AZURE_65: not a web config; detailed error pages are IIS (Windows) only
  // checkov:skip=CKV_AZURE_222: not a web config; public network access is the site's (skipped there with its reason)
  // checkov:skip=CKV_AZURE_80: not a web config, and no .NET Framework: the runtime is Python (functionAppConfig.runtime)
  // checkov:skip=CKV_AZURE_88: not a web config; the app keeps no files (no Azure Files share: Flex Consumption runs from its deployment package, data lives in blobs and tables)
  // checkov:skip=CKV_AZURE_13: not a web config; App Service Authentication is replaced by the app's own token validation (DESIGN.md §3: Graph's error envelope, per-tenant subscription check)
  parent: site
  name: 'appsettings'
  properties: union(appSettings, platformSettings)
}

// Deployments (azd, One Deploy) authenticate with Entra ID; no publishing passwords.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
