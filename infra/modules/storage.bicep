// One storage account for the Functions host (AzureWebJobsStorage), the Flex Consumption
// deployment package and the app's data. Shared keys are off: every caller, the host included,
// presents an Entra ID token, so access is exactly the role assignments in role-assignments.bicep.

@description('Name of the storage account (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the storage account.')
param location string

@description('Tags for the storage account.')
param tags object

@description('Blob container that Flex Consumption deploys the app package to.')
param deploymentContainerName string

@description('Network isolation: no public network access at all; the app reaches the account through private endpoints (network.bicep).')
param vnetEnabled bool = false

@description('Zone-redundant storage (ZRS) instead of locally redundant (LRS).')
param zoneRedundant bool = false

@description('Days a committed document is kept (DOCUMENT_RETENTION_DAYS); the lifecycle rule deletes it after that.')
@minValue(1)
param documentRetentionDays int = 7

// The names uploadsession/config.py uses (SESSIONS_TABLE, SUBSCRIPTIONS_TABLE, DOCUMENTS_CONTAINER).
// Declaring them here means the app never needs the right to create them.
var tableNames = [
  'uploadsessions'
  'subscriptions'
]
var documentsContainerName = 'documents'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Deny with vnetEnabled (main.bicep); without it the app (no VNet integration) reaches the account over its public endpoints, with Entra ID tokens and role assignments only (shared keys off)
  // checkov:skip=CKV_AZURE_206: ZRS with zoneRedundant (main.bicep); LRS by default, where documents are kept DOCUMENT_RETENTION_DAYS (7) and sessions a day
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: zoneRedundant ? 'Standard_ZRS' : 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Without vnetEnabled the account is reachable from the internet, but only with an Entra ID
    // token and a role assignment (shared keys are off): Flex Consumption apps without VNet
    // integration, azd and the CLI reach it from outside any network.
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource documentsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: documentsContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Committed documents are deleted DOCUMENT_RETENTION_DAYS after they were committed (a document
// blob is written once, by the commit: its last modification is the commit). Staged segments are
// uncommitted blocks, which no lifecycle rule can address: the purge timer discards them with
// their expired session (UPLOAD_SESSION_TTL_SECONDS, a day by default), and Blob Storage itself
// drops uncommitted blocks a week after the last one.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-committed-documents'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${documentsContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: documentRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
