
�
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call'
pager@acme.example+1 (650) 253-0000"
integrations@acme.example"en*,
a@example.comOps
Bcc: x"english please*�
b@example.com�ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé"en-2
escalations@acme.example:$
support@acme.exampleAcme SupportBN*
America/Los_Angeles08:00"20:00 
Europe/Zurich22:00"02:00
merchant_issues_contacts