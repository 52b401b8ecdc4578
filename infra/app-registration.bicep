// The API's own Microsoft Entra ID app registration: its identifier URI, the delegated scopes and
// app roles (application permissions) of DESIGN.md §3, v2.0 access tokens, and its service
// principal. Deploy it once per tenant, separately from main.bicep, as someone allowed to create
// applications (Application Developer or Cloud Application Administrator):
//
//   az deployment group create -g <rg> -f infra/app-registration.bicep --query properties.outputs
//
// then give main.bicep its authAudiences output (azd env set AUTH_AUDIENCES ...). It is kept out of
// main.bicep so that `azd up` and the CI identity need no directory permissions. docs/deploy.md
// has the whole sequence, admin consent included.
extension microsoftGraphV1

@description('Immutable alternate key of the application, and the last segment of its identifier URI.')
@minLength(1)
param uniqueName string = 'uploadsession-api'

@description('Name shown in consent prompts and the Entra admin center.')
param displayName string = 'uploadsession: Universal Print upload sessions'

@description('AzureADMultipleOrgs: any organization can consent (tenants still need an active subscription in the app, see `uploadsession subscription activate`); AzureADMyOrg: this tenant only.')
@allowed([
  'AzureADMyOrg'
  'AzureADMultipleOrgs'
])
param signInAudience string = 'AzureADMultipleOrgs'

@description('Object ids of client service principals to grant app roles to, such as the CI identity that runs the deployed smoke test.')
param clientServicePrincipalIds array = []

@description('App roles each of clientServicePrincipalIds receives.')
param clientAppRoles array = [
  'PrintJob.ReadWrite.All'
  'Printer.Read.All'
]

@description('Client app ids pre-authorized for every delegated scope (no consent prompt), e.g. the Azure CLI, 04b07795-8ddb-461a-bbee-02f9e1bf7b46, for developer tokens.')
param preAuthorizedClientAppIds array = []

// api://{tenantId}/{name} is one of the identifier URI forms Entra ID accepts for new apps without
// a verified domain (a bare api://{name} is refused by the default app management policy).
var identifierUri = 'api://${tenant().tenantId}/${uniqueName}'

// DESIGN.md §3. Ids are fixed forever: clients and grants refer to them. A permission that is both
// a delegated scope and an app role keeps one id and one text in both lists, which Entra ID requires
// when a scope and a role share a value.
var permissions = [
  {
    value: 'PrintJob.Read'
    id: 'e6fee327-ca88-4e01-923a-2ff27f5497f5'
    application: false
    adminOnly: false
    title: 'Read the user\'s print documents'
    text: 'Allows the app to read the upload sessions of print documents the signed-in user created.'
  }
  {
    value: 'PrintJob.ReadWrite'
    id: 'b1ee588c-97f1-484c-9aaa-c86132ed6e8b'
    application: false
    adminOnly: false
    title: 'Upload the user\'s print documents'
    text: 'Allows the app to create, read, upload to and cancel upload sessions of print documents the signed-in user created.'
  }
  {
    value: 'PrintJob.Read.All'
    id: '7f11a192-3920-4f81-85ae-2cf273e73afb'
    application: true
    adminOnly: true
    title: 'Read all print documents'
    text: 'Allows the app to read the upload sessions of every print document in the organization.'
  }
  {
    value: 'PrintJob.ReadWrite.All'
    id: '80ebd428-fcf6-4cb8-9b39-9804efbfc40c'
    application: true
    adminOnly: true
    title: 'Upload all print documents'
    text: 'Allows the app to create, read, upload to and cancel upload sessions of any print document in the organization.'
  }
  {
    value: 'Printer.Read.All'
    id: '86fd4320-5e08-419c-a741-8e385fe86bcc'
    application: true
    adminOnly: true
    title: 'Read printers'
    text: 'Allows the app to read the organization\'s printers, which every upload session request needs.'
  }
  {
    value: 'Printer.ReadWrite.All'
    id: 'a3449060-e425-437b-a528-3fc89b427f08'
    application: true
    adminOnly: true
    title: 'Read and update printers'
    text: 'Allows the app to read and update the organization\'s printers.'
  }
  {
    value: 'Printer.FullControl.All'
    id: '76f8b4dc-1de2-489f-8c06-db1ced83976e'
    application: false
    adminOnly: true
    title: 'Fully control printers'
    text: 'Allows the app to register, read, update and unregister the organization\'s printers.'
  }
]

var delegatedScopes = map(permissions, p => {
  id: p.id
  value: p.value
  type: p.adminOnly ? 'Admin' : 'User'
  isEnabled: true
  adminConsentDisplayName: p.title
  adminConsentDescription: p.text
  userConsentDisplayName: p.title
  userConsentDescription: p.text
})

var applicationRoles = map(filter(permissions, p => p.application), p => {
  id: p.id
  value: p.value
  allowedMemberTypes: [
    'Application'
  ]
  isEnabled: true
  displayName: p.title
  description: p.text
})

var permissionIds = toObject(permissions, p => p.value, p => p.id)

var clientGrants = flatten(map(clientServicePrincipalIds, principal => map(clientAppRoles, role => {
  principalId: principal
  appRoleId: permissionIds[role]
})))

resource application 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: uniqueName
  displayName: displayName
  signInAudience: signInAudience
  identifierUris: [
    identifierUri
  ]
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: delegatedScopes
    preAuthorizedApplications: map(preAuthorizedClientAppIds, clientAppId => {
      appId: clientAppId
      delegatedPermissionIds: map(permissions, p => p.id)
    })
  }
  appRoles: applicationRoles
}

resource servicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: application.appId
}

resource clientRoleGrants 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for grant in clientGrants: {
    principalId: grant.principalId
    resourceId: servicePrincipal.id
    appRoleId: grant.appRoleId
  }
]

@description('The application (client) id: the aud of v2.0 access tokens.')
output appId string = application.appId

@description('The identifier URI: the aud of v1.0 access tokens, and the prefix of scopes.')
output identifierUri string = identifierUri

output servicePrincipalId string = servicePrincipal.id

@description('AUTH_AUDIENCES for main.bicep (azd env set AUTH_AUDIENCES ...).')
output authAudiences string = '${application.appId},${identifierUri}'

@description('Scope to request an application token for this API with, e.g. az account get-access-token --scope <this>.')
output defaultScope string = '${identifierUri}/.default'
